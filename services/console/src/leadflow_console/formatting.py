"""How the console writes times and durations: what a person reads at a glance (``4 min 10 s``), with the
exact UTC time kept for a ``<time datetime>`` attribute."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """A service's ISO 8601 time (or a datetime) as an aware datetime; None when absent or unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def utc_time(value: Any) -> str:
    """``2026-12-03 09:00:04 UTC`` (``-`` when absent)."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if parsed else "-"


def iso_time(value: Any) -> str:
    parsed = parse_time(value)
    return parsed.astimezone(UTC).isoformat() if parsed else ""


def duration(seconds: Any) -> str:
    """``2 h 5 min``, ``4 min 10 s``, ``12 s``, ``340 ms`` (``-`` when absent); negative reads as its size."""
    if not isinstance(seconds, int | float):
        return "-"
    seconds = abs(seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def milliseconds(value: Any) -> str:
    return duration(value / 1000) if isinstance(value, int | float) else "-"


FORMATTERS: dict[str, Any] = {"utc_time": utc_time, "iso_time": iso_time, "duration": duration,
                              "milliseconds": milliseconds}
