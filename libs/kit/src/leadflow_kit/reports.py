"""What every report route shares: its window [from, to) and its answer, JSON or CSV on request.

A window defaults to the 30 days before ``to`` (``to`` defaulting to now); a time without a zone is
read as UTC, the zone every timestamp is kept in; ``from`` must come before ``to``. CSV is answered
for ``format=csv`` or, when no format is asked, for ``Accept: text/csv``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from leadflow_kit.errors import invalid_field

ReportFormat = Literal["json", "csv"]
DEFAULT_WINDOW = timedelta(days=30)

FROM_QUERY = Query(default=None, alias="from", description="Inclusive; default 30 days before to")
TO_QUERY = Query(default=None, alias="to", description="Exclusive; default now")
FORMAT_QUERY = Query(default=None, description="Or send Accept: text/csv")


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def report_window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """[from, to) of a report, or a 422 naming the field at fault."""
    end = as_utc(end) if end else now
    try:
        start = as_utc(start) if start else end - DEFAULT_WINDOW
    except OverflowError:
        raise invalid_field("to", "range", "to is too early to report 30 days before it") from None
    if start >= end:
        raise invalid_field("from", "range", "from must be before to")
    return start, end


def wants_csv(request: Request, format: ReportFormat | None) -> bool:
    return format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))


def report_answer(request: Request, format: ReportFormat | None, report: dict[str, Any],
                  to_csv: Callable[[dict[str, Any]], str], filename: str) -> Response:
    """The report as JSON, or as a CSV attachment named ``filename``."""
    if wants_csv(request, format):
        return Response(to_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return JSONResponse(jsonable_encoder(report))


def report_examples(example: dict[str, Any], to_csv: Callable[[dict[str, Any]], str]) -> dict[int | str, Any]:
    """The OpenAPI ``responses`` of a report route: its example, as JSON and as CSV."""
    return {200: {"content": {"application/json": {"example": jsonable_encoder(example)},
                              "text/csv": {"example": to_csv(example)}}}}
