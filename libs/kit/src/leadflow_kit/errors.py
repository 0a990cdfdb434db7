"""Field-level error bodies: every 4xx names the field, a machine code and a human reason."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel


class FieldError(BaseModel):
    field: str
    code: str
    message: str


def _field_path(location: Sequence[Any]) -> str:
    parts = [str(p) for p in location]
    # FastAPI prefixes the location ("body", "query", ...); keep it only when nothing else names the field.
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_errors(errors: Iterable[Any]) -> list[FieldError]:
    return [
        FieldError(field=_field_path(e.get("loc", ())), code=str(e.get("type", "invalid")), message=str(e.get("msg")))
        for e in errors
    ]
