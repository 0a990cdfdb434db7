"""Output: aligned tables and key/value blocks for people, plain JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_CELL = 60


@dataclass(frozen=True)
class Output:
    """What a command answers: the data (printed as-is with --json) and how to show it to people.

    ``columns`` makes a list of objects a table (``(heading, key)`` pairs; a key may be dotted,
    ``sla.status``); without it a list is a table of every key of the first row and an object a
    key/value block. ``text`` is shown verbatim instead (a model's YAML source, a CSV report).
    """

    data: Any
    columns: Sequence[tuple[str, str]] | None = None
    text: str | None = None
    message: str | None = None
    error: str | None = None
    exit_code: int = 0


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def render(output: Output, *, as_json: bool) -> str:
    if as_json:
        return to_json(output.data)
    if output.text is not None:
        return output.text.rstrip("\n")
    parts: list[str] = []
    data = output.data
    if isinstance(data, list):
        parts.append(table(data, output.columns))
    elif isinstance(data, dict):
        parts.append(block(data))
    elif data is not None:
        parts.append(str(data))
    if output.message:
        parts.append(output.message)
    return "\n".join(p for p in parts if p)


def lookup(row: Any, key: str) -> Any:
    value = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def cell(value: Any, limit: int = MAX_CELL) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        text = ", ".join(str(v) for v in value) or "-"
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def table(rows: Sequence[Any], columns: Sequence[tuple[str, str]] | None = None) -> str:
    if not rows:
        return "(none)"
    if columns is None:
        first = rows[0] if isinstance(rows[0], dict) else {"value": rows[0]}
        columns = [(key, key) for key in first]
        rows = [r if isinstance(r, dict) else {"value": r} for r in rows]
    grid = [[heading.upper() for heading, _ in columns]]
    grid += [[cell(lookup(row, key)) for _, key in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in grid)


def block(data: dict[str, Any]) -> str:
    """An object as ``key  value`` lines; nested objects and lists of objects as indented JSON."""
    if not data:
        return "(empty)"
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        nested = (isinstance(value, dict) and bool(value)) or (
            isinstance(value, list) and any(isinstance(v, dict | list) for v in value))
        if nested:
            body = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            lines.append(f"{key}:")
            lines += [f"  {line}" for line in body.splitlines()]
        else:
            lines.append(f"{key.ljust(width)}  {cell(value, limit=10_000)}")
    return "\n".join(lines)
