from __future__ import annotations


class StackError(RuntimeError):
    """A part of the local stack could not be started, reached or stopped.

    The message carries enough context (usually the tail of the component's log) to fix the
    problem without opening files by hand.
    """
