"""Bucket arithmetic of the reports over time, and the in-period, cohort and speed-to-lead figures, without I/O."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from leadflow_sla import trends
from leadflow_sla.app import create_app
from leadflow_sla.settings import Settings
from leadflow_sla.trends import Buckets, CohortLead, LeadMoments, SpeedRow

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


def test_a_week_starts_on_monday_midnight_in_the_zone_not_in_utc() -> None:
    # Sunday 23:30 UTC is already Monday 00:30 in Paris: the new week there.
    assert trends.bucket_start(datetime(2026, 11, 8, 23, 30, tzinfo=UTC), "week", PARIS) == paris(2026, 11, 9)
    # Sunday 22:59 UTC is Sunday 23:59 in Paris: the week of Monday 2 November.
    assert trends.bucket_start(datetime(2026, 11, 8, 22, 59, tzinfo=UTC), "week", PARIS) == paris(2026, 11, 2)
    # The same instant in UTC belongs to the week before.
    assert trends.bucket_start(datetime(2026, 11, 8, 23, 30, tzinfo=UTC), "week", ZoneInfo("UTC")) == datetime(
        2026, 11, 2, tzinfo=ZoneInfo("UTC"))


def test_days_and_months_are_calendar_ones_in_the_zone() -> None:
    # 02:00 UTC on 1 December is still 30 November, 21:00, in New York.
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert trends.bucket_start(at, "day", NEW_YORK) == datetime(2026, 11, 30, tzinfo=NEW_YORK)
    assert trends.bucket_start(at, "month", NEW_YORK) == datetime(2026, 11, 1, tzinfo=NEW_YORK)
    assert trends.bucket_start(at, "month", PARIS) == paris(2026, 12, 1)


def test_next_buckets_follow_the_calendar_across_daylight_saving_and_year_ends() -> None:
    # Paris leaves summer time on Sunday 25 October 2026: that day lasts 25 hours.
    day = trends.next_bucket_start(paris(2026, 10, 25), "day", PARIS)
    assert day == paris(2026, 10, 26)
    assert (day.astimezone(UTC) - paris(2026, 10, 25).astimezone(UTC)).total_seconds() == 25 * 3600
    assert trends.next_bucket_start(paris(2026, 10, 19), "week", PARIS) == paris(2026, 10, 26)
    assert trends.next_bucket_start(paris(2026, 12, 1), "month", PARIS) == paris(2027, 1, 1)
    assert trends.next_bucket_start(paris(2027, 1, 1), "month", PARIS) == paris(2027, 2, 1)
    assert trends.next_bucket_start(paris(2028, 2, 1), "month", PARIS) == paris(2028, 3, 1)


def test_the_buckets_cover_the_window_and_the_edges_may_stick_out() -> None:
    start, end = datetime(2026, 11, 4, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
    assert trends.bucket_starts(start, end, "week", PARIS) == [paris(2026, 11, 2), paris(2026, 11, 9),
                                                                 paris(2026, 11, 16)]
    # 16 November 00:00 UTC is 01:00 in Paris: the third week has started before the window ends.
    assert trends.bucket_starts(start, end, "week", ZoneInfo("UTC"))[-1] == datetime(
        2026, 11, 9, tzinfo=ZoneInfo("UTC"))
    assert len(trends.bucket_starts(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "day",
                                    ZoneInfo("UTC"))) == 365


def test_too_many_buckets_is_refused() -> None:
    with pytest.raises(trends.TooManyBuckets):
        trends.bucket_starts(datetime(2000, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "day", PARIS)


def test_only_names_in_the_tz_database_are_time_zones() -> None:
    assert trends.time_zone("Europe/Paris") == PARIS
    for name in ("Mars/Olympus", "", "../../etc/passwd", "Europe", "europe/paris"):
        assert trends.time_zone(name) is None


SUNDAY_NIGHT = datetime(2026, 11, 8, 22, 30, tzinfo=UTC)  # Sunday 23:30 in Paris
MONDAY_NIGHT = datetime(2026, 11, 8, 23, 30, tzinfo=UTC)  # Monday 00:30 in Paris
WINDOW = (datetime(2026, 11, 1, 23, tzinfo=UTC), datetime(2026, 11, 15, 23, tzinfo=UTC))


def test_in_period_counts_put_each_moment_in_its_own_bucket() -> None:
    buckets = Buckets.over(*WINDOW, "week", PARIS)
    leads = [
        LeadMoments((SUNDAY_NIGHT, SUNDAY_NIGHT, MONDAY_NIGHT, None, None, None, MONDAY_NIGHT), 3600.0),
        LeadMoments((MONDAY_NIGHT, None, None, None, None, None, MONDAY_NIGHT), 60.0),
        # Captured before the window: only its conversion, inside it, counts.
        LeadMoments((datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC), None, None, None,
                     SUNDAY_NIGHT, None)),
    ]
    report = trends.in_period_report(leads, *WINDOW, buckets)
    assert report["kind"] == "in_period"
    assert [(b["bucket"], b["counts"]) for b in report["buckets"]] == [
        ("2026-11-02", {"captured": 1, "mql": 1, "accepted": 0, "sql": 0, "opportunity": 0, "converted": 1,
                        "first_touched": 0}),
        ("2026-11-09", {"captured": 1, "mql": 0, "accepted": 1, "sql": 0, "opportunity": 0, "converted": 0,
                        "first_touched": 2}),
    ]
    # The speed to lead of the leads first touched in the bucket: 60 and 3600 s.
    assert report["buckets"][0]["speed_to_lead_seconds"] == {"median": None, "p90": None}
    assert report["buckets"][1]["speed_to_lead_seconds"] == {"median": 1830.0, "p90": 3246.0}
    assert report["total"] == {"counts": {"captured": 2, "mql": 1, "accepted": 1, "sql": 0, "opportunity": 0,
                                          "converted": 1, "first_touched": 2},
                               "speed_to_lead_seconds": {"median": 1830.0, "p90": 3246.0}}
    rows = list(csv.DictReader(io.StringIO(trends.in_period_csv(report))))
    assert [(r["bucket"], r["captured"], r["accepted"], r["speed_to_lead_p90_seconds"]) for r in rows] == [
        ("2026-11-02", "1", "0", ""), ("2026-11-09", "1", "1", "3246"), ("total", "2", "1", "3246")]


def test_a_cohort_counts_every_stage_its_leads_reached_and_empty_buckets_show() -> None:
    buckets = Buckets.over(datetime(2026, 11, 1, 23, tzinfo=UTC), datetime(2026, 11, 22, 23, tzinfo=UTC), "week",
                           PARIS)
    leads = [CohortLead(SUNDAY_NIGHT, 3, 600.0, "breached"), CohortLead(MONDAY_NIGHT, 5, 60.0, "met"),
             CohortLead(MONDAY_NIGHT, 0, None, None)]
    report = trends.cohort_report(leads, datetime(2026, 11, 1, 23, tzinfo=UTC),
                                  datetime(2026, 11, 22, 23, tzinfo=UTC), buckets)
    assert report["kind"] == "cohort"
    first, second, empty = report["buckets"]
    assert first["counts"] == {"captured": 1, "mql": 1, "accepted": 1, "sql": 1, "opportunity": 0, "converted": 0}
    assert second["counts"]["captured"] == 2 and second["counts"]["converted"] == 1
    assert second["conversion_rates"]["captured_to_mql"] == 0.5
    assert second["sla"] == {"met": 1, "breached": 0, "compliance_pct": 100.0}
    assert empty["bucket"] == "2026-11-16" and empty["counts"]["captured"] == 0
    assert report["total"]["speed_to_lead_seconds"] == {"touched": 2, "median": 330.0, "p90": 546.0}
    rows = list(csv.DictReader(io.StringIO(trends.cohort_csv(report))))
    assert [(r["bucket"], r["captured"], r["sla_compliance_pct"]) for r in rows] == [
        ("2026-11-02", "1", "0"), ("2026-11-09", "2", "100"), ("2026-11-16", "0", ""), ("total", "3", "50")]


def test_speed_to_lead_shares_and_the_total_row() -> None:
    rows = [SpeedRow("emea", 3, 3, 120.0, 504.00000001, 2, 1, 2, 1), SpeedRow("(none)", 1, 0, None, None, 0, 0, 0, 0),
            SpeedRow(None, 4, 3, 120.0, 504.0, 2, 1, 2, 1)]
    report = trends.speed_report(rows, *WINDOW, "team")
    assert [g["group"] for g in report["groups"]] == ["(none)", "emea"]
    emea = report["groups"][1]
    assert emea["first_touch_p90_seconds"] == 504.0 and emea["within_sla_pct"] == 66.67
    assert report["groups"][0]["within_sla_pct"] is None
    assert report["total"]["group"] == "total" and report["total"]["escalations"] == 1
    lines = list(csv.DictReader(io.StringIO(trends.speed_csv(report))))
    assert lines[1] == {"group": "emea", "leads": "3", "touched": "3", "first_touch_median_seconds": "120",
                        "first_touch_p90_seconds": "504", "sla_met": "2", "sla_breached": "1",
                        "within_sla_pct": "66.67", "breaches": "2", "escalations": "1"}


def test_the_reports_over_time_are_documented_routes_with_their_parameters() -> None:
    paths = create_app(Settings(environment="test")).openapi()["paths"]
    for path in ("/v1/reports/funnel/trend", "/v1/reports/cohorts"):
        assert {p["name"] for p in paths[path]["get"]["parameters"]} == {"from", "to", "interval", "tz", "format"}
        assert set(paths[path]["get"]["responses"]["200"]["content"]) == {"application/json", "text/csv"}
        assert paths[path]["get"]["x-required-scopes"] == ["reports:read"]
    speed = paths["/v1/reports/speed-to-lead"]["get"]
    assert {p["name"] for p in speed["parameters"]} == {"from", "to", "group_by", "format"}
    assert speed["x-required-scopes"] == ["reports:read"]
