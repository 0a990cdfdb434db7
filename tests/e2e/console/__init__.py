"""The console's browser tests (a package, so that their stack is package-scoped)."""
