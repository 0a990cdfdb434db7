"""A report's window and its answer, JSON or CSV, as every report route shares them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from leadflow_kit.reports import report_answer, report_window

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def request(accept: str = "application/json") -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"accept", accept.encode())]})


def to_csv(report: dict[str, Any]) -> str:
    return f"leads\r\n{report['leads']}\r\n"


def test_the_window_defaults_to_the_30_days_before_now() -> None:
    assert report_window(None, None, NOW) == (NOW - timedelta(days=30), NOW)


def test_a_time_without_a_zone_is_utc_and_to_alone_moves_the_default_from() -> None:
    start, end = report_window(None, datetime(2026, 11, 30), NOW)
    assert end == datetime(2026, 11, 30, tzinfo=UTC)
    assert start == datetime(2026, 10, 31, tzinfo=UTC)


@pytest.mark.parametrize(("start", "end", "field", "message"), [
    (NOW, NOW, "from", "from must be before to"),
    (NOW + timedelta(seconds=1), NOW, "from", "from must be before to"),
    (None, datetime(1, 1, 2, tzinfo=UTC), "to", "to is too early to report 30 days before it"),
])
def test_a_window_that_is_no_window_is_a_422_naming_the_field(
        start: datetime | None, end: datetime, field: str, message: str) -> None:
    with pytest.raises(HTTPException) as refused:
        report_window(start, end, NOW)
    assert refused.value.status_code == 422
    assert refused.value.detail["errors"] == [{"field": field, "code": "range", "message": message}]


def test_the_answer_is_json_unless_csv_is_asked_for() -> None:
    answer = report_answer(request(), None, {"leads": 3}, to_csv, "funnel.csv")
    assert answer.media_type == "application/json"
    assert answer.body == b'{"leads":3}'


@pytest.mark.parametrize(("accept", "format"), [("text/csv", None), ("application/json", "csv")])
def test_csv_by_accept_header_or_format_is_an_attachment(accept: str, format: Any) -> None:
    answer = report_answer(request(accept), format, {"leads": 3}, to_csv, "funnel.csv")
    assert answer.media_type == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == 'attachment; filename="funnel.csv"'
    assert answer.body == b"leads\r\n3\r\n"


def test_format_json_wins_over_an_accept_header_asking_for_csv() -> None:
    assert report_answer(request("text/csv"), "json", {"leads": 3}, to_csv, "f.csv").media_type == "application/json"
