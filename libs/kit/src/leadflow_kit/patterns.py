"""Admin-written regular expressions (routing ``matches`` conditions, scoring-model patterns), run by RE2.

Python's ``re`` backtracks: a pattern such as ``(a+)+$`` takes exponential time on a lead field an
outsider typed. RE2 runs in time linear in the text for every pattern it accepts, and refuses what it
cannot run that way (backreferences, look-around). Patterns ignore case, as they always have; ``\\d``,
``\\w``, ``\\s`` and ``\\b`` are ASCII-only in RE2 (``\\pL``, ``\\pN`` match any letter or digit).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

MAX_PATTERN_LENGTH = 1000


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    # A pattern that does not compile is the caller's answer (a 422), not a line on stderr.
    options.log_errors = False
    return options


_OPTIONS = _options()


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> tuple[Any, str | None]:
    if len(pattern) > MAX_PATTERN_LENGTH:
        return None, f"longer than {MAX_PATTERN_LENGTH} characters"
    try:
        return re2.compile(pattern, _OPTIONS), None
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        return None, reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def pattern_error(pattern: str) -> str | None:
    """Why RE2 cannot run ``pattern``, or None when it can."""
    return _compiled(pattern)[1]


def pattern_found(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text``, ignoring case.

    A pattern RE2 cannot compile matches nothing: saving one is refused, so only a rule stored
    before that check can hold one, and it must not stop the lead being processed.
    """
    compiled = _compiled(pattern)[0]
    return compiled is not None and compiled.search(text) is not None
