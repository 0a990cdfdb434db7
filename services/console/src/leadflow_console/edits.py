"""What the configuration pages share: reading a form's text boxes into the values a service's admin API
takes, and a service's refusal (its problem ``errors``) into messages shown next to the fields they name."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from leadflow_console.clients import ServiceError, ServiceUnavailable

# Commas or line breaks separate the items of a list typed into one box.
_SEPARATORS = re.compile(r"[,\n\r]+")
GENERAL = "_general"


class InputProblem(ValueError):
    """A box the console could not read (before any service is asked): ``field`` names the box."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class FieldErrors:
    """Messages by the form field they belong to; what names no field of the form is ``general``."""

    by_field: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.by_field or self.general)

    def get(self, name: str) -> str | None:
        return self.by_field.get(name)

    def add(self, name: str, message: str) -> None:
        if name in self.by_field:
            self.by_field[name] += f"; {message}"
        else:
            self.by_field[name] = message


def refusal_errors(exc: ServiceError, fields: Iterable[str], aliases: Mapping[str, str] | None = None) -> FieldErrors:
    """A service's 4xx as messages next to the form's ``fields``: an error on ``out_of_office.0.end`` goes to
    the field ``out_of_office``; ``aliases`` maps a service's field name to the form's. The rest, and the
    problem's ``detail`` when no error names a field, are general."""
    known = set(fields)
    errors = FieldErrors()
    for error in exc.errors:
        name = str(error.get("field") or "")
        message = str(error.get("message") or error.get("code") or "invalid")
        top = name.split(".", 1)[0]
        target = (aliases or {}).get(name) or (aliases or {}).get(top) or top
        if target in known:
            errors.add(target, message)
        else:
            errors.general.append(f"{name}: {message}" if name and name != "body" else message)
    if not errors.by_field and not errors.general:
        errors.general.append(exc.message)
    elif not errors.by_field:
        errors.general.insert(0, f"{exc.service} refused the request: {exc.detail}")
    return errors


async def attempt(send: Callable[[], Awaitable[Any]], fields: Iterable[str],
                  aliases: Mapping[str, str] | None = None) -> Any:
    """What ``send`` answers, or the ``FieldErrors`` to show on the form: a box the console could not read
    (``send`` builds its body) or the service's refusal. A service down, or refusing the console's key, raises."""
    try:
        return await send()
    except InputProblem as problem:
        return FieldErrors({problem.field: problem.message})
    except ServiceError as exc:
        if not is_refusal(exc):
            raise
        return refusal_errors(exc, fields, aliases)


def is_refusal(exc: ServiceError) -> bool:
    """A 4xx the user can act on (not a service down, not the console's own key refused)."""
    return not isinstance(exc, ServiceUnavailable) and 400 <= exc.status < 500 and exc.status not in (401, 403)


def text_list(value: str) -> list[str]:
    """'a, b\\nc' -> ['a', 'b', 'c'] (empty items dropped, order kept, duplicates removed)."""
    return list(dict.fromkeys(item.strip() for item in _SEPARATORS.split(value) if item.strip()))


def optional_text(value: str) -> str | None:
    stripped = value.strip()
    return stripped or None


def optional_int(name: str, value: str) -> int | None:
    stripped = value.strip()
    if not stripped:
        return None
    try:
        return int(stripped)
    except ValueError:
        raise InputProblem(name, "must be a whole number") from None


def optional_float(name: str, value: str) -> float | None:
    stripped = value.strip()
    if not stripped:
        return None
    try:
        return float(stripped)
    except ValueError:
        raise InputProblem(name, "must be a number") from None


def mapping_lines(name: str, value: str) -> dict[str, str]:
    """Lines 'posted_name = canonical' -> {posted_name: canonical}."""
    mapping: dict[str, str] = {}
    for number, raw in enumerate(value.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        posted, sep, canonical = line.partition("=")
        if not sep or not posted.strip() or not canonical.strip():
            raise InputProblem(name, f"line {number}: write 'posted_name = lead_field'")
        mapping[posted.strip()] = canonical.strip()
    return mapping


def mapping_text(mapping: Mapping[str, str]) -> str:
    return "\n".join(f"{posted} = {canonical}" for posted, canonical in mapping.items())


def working_hours_lines(name: str, value: str) -> dict[str, list[str]] | None:
    """Lines 'mon 09:00-12:00 13:00-17:00' -> {"mon": ["09:00-12:00", "13:00-17:00"]}; nothing -> None
    (always working). The service checks the days and times."""
    hours: dict[str, list[str]] = {}
    for number, raw in enumerate(value.splitlines(), start=1):
        parts = raw.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) < 2:
            raise InputProblem(name, f"line {number}: write a day then its hours, e.g. 'mon 09:00-17:00'")
        hours.setdefault(parts[0].lower(), []).extend(parts[1:])
    return hours or None


def working_hours_text(hours: Mapping[str, list[str]] | None) -> str:
    return "\n".join(f"{day} {' '.join(ranges)}" for day, ranges in (hours or {}).items())


def out_of_office_lines(name: str, value: str) -> list[dict[str, Any]]:
    """Lines 'START END [reason]' (times with a UTC offset, e.g. 2026-12-24T00:00+00:00) -> ranges."""
    ranges: list[dict[str, Any]] = []
    for number, raw in enumerate(value.splitlines(), start=1):
        parts = raw.split(maxsplit=2)
        if not parts:
            continue
        if len(parts) < 2:
            raise InputProblem(name, f"line {number}: write the start and the end, then the reason if any")
        entry: dict[str, Any] = {"start": parts[0], "end": parts[1]}
        if len(parts) == 3:
            entry["reason"] = parts[2].strip()
        ranges.append(entry)
    return ranges


def out_of_office_text(ranges: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(" ".join(str(part) for part in (r.get("start"), r.get("end"), r.get("reason")) if part)
                     for r in ranges)
