"""The one LeadFlow version: every workspace package carries it (a release test keeps them equal)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _installed_version() -> str:
    try:
        return version("leadflow-kit")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


VERSION = _installed_version()
