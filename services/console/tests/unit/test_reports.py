"""The reports pages' pure parts: filters as the form and the services read them, the service's 422 shown
next to the field it names, and the figures the charts and tables are made of."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from leadflow_console.app import create_app
from leadflow_console.auth import User
from leadflow_console.clients import ServiceError
from leadflow_console.pages.reports import (
    REPORTS_BY_KEY,
    csv_filename,
    field_errors,
    funnel_sections,
    parse_filters,
    quality_sections,
    service_call,
    speed_sections,
    trend_sections,
    visible_reports,
)
from leadflow_console.settings import Settings

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
FUNNEL = REPORTS_BY_KEY["funnel"]
TREND = REPORTS_BY_KEY["trend"]
QUALITY = REPORTS_BY_KEY["data-quality"]


def filters_of(report_key: str, **params: str):
    report = REPORTS_BY_KEY[report_key]
    return parse_filters(params, report.choices, NOW, with_tz=report.with_tz)


def test_the_default_window_is_the_last_30_days_through_today_in_utc():
    filters = filters_of("funnel")
    assert filters.errors == {}
    assert filters.values == {"from": "2026-11-04", "through": "2026-12-03", "group_by": ""}
    # The last day is whole: the service's `to` is exclusive.
    assert filters.api_params == {"from": "2026-11-04T00:00:00+00:00", "to": "2026-12-04T00:00:00+00:00"}


def test_the_window_of_a_report_over_time_is_whole_days_in_its_time_zone():
    filters = filters_of("trend", **{"from": "2026-11-02", "through": "2026-11-15", "tz": "Europe/Paris",
                                     "interval": "day", "view": "cohort"})
    assert filters.errors == {}
    path, params = service_call(TREND, filters)
    assert path == "/v1/reports/cohorts"
    assert params == {"from": "2026-11-02T00:00:00+01:00", "to": "2026-11-16T00:00:00+01:00",
                      "tz": "Europe/Paris", "interval": "day"}
    assert service_call(TREND, filters_of("trend"))[0] == "/v1/reports/funnel/trend"


def test_each_wrong_filter_is_named_with_what_to_give():
    filters = filters_of("trend", **{"from": "3 days ago", "tz": "Mars/Olympus", "interval": "fortnight"})
    assert set(filters.errors) == {"from", "tz", "interval"}
    assert "YYYY-MM-DD" in filters.errors["from"]
    assert "IANA time zone" in filters.errors["tz"]
    assert filters.errors["interval"] == "Choose one of: Day, Week, Month."
    assert set(filters_of("trend", tz="../../etc/passwd").errors) == {"tz"}
    assert set(filters_of("trend", tz="UTC\x00").errors) == {"tz"}
    assert filters_of("funnel", **{"from": "2026-12-02", "through": "2026-12-01"}).errors == {
        "from": "The first day must not be after the last."}
    assert set(filters_of("funnel", group_by="campaign").errors) == {"group_by"}
    assert filters_of("funnel", through="9999-12-31").errors == {"through": "Give a day from 2000-01-01 to 2100-12-31."}
    assert set(filters_of("funnel", **{"from": "0001-01-01"}).errors) == {"from"}


def test_a_time_zone_is_asked_only_by_the_reports_over_time():
    assert "tz" not in filters_of("funnel", tz="Mars/Olympus").api_params
    assert filters_of("funnel", tz="Mars/Olympus").errors == {}


def test_a_services_422_shows_next_to_the_form_field_it_names():
    error = ServiceError("sla", 422, "The request is invalid; see errors.", [
        {"field": "interval", "code": "too_many", "message": "more than 1200 buckets"},
        {"field": "query.to", "code": "range", "message": "to must be after from"}])
    assert field_errors(error) == {"interval": "more than 1200 buckets", "through": "to must be after from"}
    assert field_errors(ServiceError("sla", 422, "bad window")) == {"": "bad window"}


def test_the_csv_is_named_after_the_report_and_its_window():
    assert csv_filename(FUNNEL, filters_of("funnel")) == "funnel-2026-11-04-to-2026-12-03.csv"


def test_each_role_sees_the_reports_it_may_open():
    def keys(role: str) -> list[str]:
        return [r.key for r in visible_reports(User("u", "u", "U", role))]  # type: ignore[arg-type]

    assert keys("admin") == ["funnel", "trend", "speed-to-lead", "data-quality"]
    assert keys("marketing_ops") == ["funnel", "trend", "speed-to-lead", "data-quality"]
    assert keys("sales_manager") == ["speed-to-lead"]
    assert keys("rep") == []


FUNNEL_ANSWER = {
    "reporting_currency": "USD",
    "groups": [{"group": "google", "counts": {"captured": 3, "mql": 3, "accepted": 2, "sql": 2, "opportunity": 2,
                                              "converted": 1},
                "conversion_rates": {"captured_to_mql": 1.0, "captured_to_converted": 0.3333},
                "speed_to_lead_seconds": {"touched": 2, "median": 360.0, "p90": 552.0},
                "sla": {"met": 1, "breached": 1, "compliance_pct": 50.0},
                "pipeline": "5000.00", "revenue": "13200.00", "deals": {"open": 1, "won": 1, "lost": 0},
                "win_rate": 1.0, "average_deal_size": "13200.00", "spend": "9200.00", "cost_per_lead": "3066.67",
                "cost_per_mql": "3066.67", "cost_per_opportunity": "4600.00", "return_on_spend": "1.43"}],
    "total": {"group": "total", "counts": {"captured": 5, "mql": 5, "accepted": 4, "sql": 4, "opportunity": 4,
                                           "converted": 2},
              "conversion_rates": {"captured_to_converted": 0.4}, "speed_to_lead_seconds": {"median": 210.0},
              "sla": {"compliance_pct": 75.0}, "pipeline": "5000.00", "revenue": "16200.00",
              "deals": {"open": 1, "won": 2, "lost": 1}, "win_rate": 0.6667, "average_deal_size": "8100.00",
              "spend": "12500.00", "cost_per_lead": "2500.00", "cost_per_mql": "2500.00",
              "cost_per_opportunity": "3125.00", "return_on_spend": "1.30"},
}


def test_the_funnel_charts_each_group_and_tables_every_figure_with_the_total():
    funnel, rates, money, cost = funnel_sections(FUNNEL_ANSWER)
    assert funnel.chart is not None
    assert funnel.chart.labels == ["Captured", "MQL", "Accepted", "SQL", "Opportunity", "Converted"]
    assert funnel.chart.datasets == [{"label": "google", "data": [3, 3, 2, 2, 2, 1]}]
    assert funnel.table.rows == [["google", "3", "3", "2", "2", "2", "1", "33.3 %", "6.0 min", "50.0 %"],
                                 ["total", "5", "5", "4", "4", "4", "2", "40.0 %", "3.5 min", "75.0 %"]]
    assert rates.chart is None and rates.table.rows[0][1] == "100.0 %"
    assert money.chart is not None and money.chart.datasets[1] == {"label": "Revenue", "data": [13200.0]}
    assert money.table.rows[1][:3] == ["total", "5000.00 USD", "16200.00 USD"]
    assert money.table.rows[1][-1] == "1.30x"
    assert cost.table.rows[0][2] == "3066.67 USD"


def test_an_ungrouped_funnel_charts_its_total_and_a_missing_figure_is_a_dash():
    answer = {"reporting_currency": "USD", "groups": [], "total": {
        "group": "total", "counts": dict.fromkeys(("captured", "mql", "accepted", "sql", "opportunity",
                                                   "converted"), 0),
        "conversion_rates": {}, "speed_to_lead_seconds": {"median": None}, "sla": {"compliance_pct": None},
        "pipeline": "0.00", "revenue": "0.00", "deals": {}, "win_rate": None, "cost_per_lead": None}}
    funnel, _, money, _ = funnel_sections(answer)
    assert funnel.chart is not None and funnel.chart.datasets == [{"label": "total", "data": [0] * 6}]
    assert funnel.table.rows == [["total", "0", "0", "0", "0", "0", "0", "\u2013", "\u2013", "\u2013"]]
    assert money.table.rows[0][6] == "\u2013"


def test_a_chart_draws_at_most_eight_groups_and_says_so():
    groups = [{"group": f"source-{i}", "counts": {"captured": i}} for i in range(10)]
    funnel = funnel_sections({"groups": groups, "total": {"group": "total", "counts": {"captured": 45}}})[0]
    assert funnel.chart is not None and len(funnel.chart.datasets) == 8
    assert len(funnel.table.rows) == 11
    assert funnel.note == "The chart shows the first 8 of 10 groups; the table has them all."


def test_the_funnel_over_time_tables_each_period_and_the_total():
    answer = {"kind": "in_period", "buckets": [
        {"bucket": "2026-11-02", "counts": {"captured": 1, "mql": 1, "first_touched": 0},
         "speed_to_lead_seconds": {"median": None, "p90": None}},
        {"bucket": "2026-11-09", "counts": {"captured": 1, "mql": 1, "accepted": 1, "first_touched": 1},
         "speed_to_lead_seconds": {"median": 34200.0, "p90": 34200.0}}],
        "total": {"counts": {"captured": 2}, "speed_to_lead_seconds": {"median": 34200.0, "p90": 34200.0}}}
    trend, speed = trend_sections(answer)
    assert trend.chart is not None and trend.chart.labels == ["2026-11-02", "2026-11-09"]
    assert trend.chart.datasets[0] == {"label": "Captured", "data": [1, 1]}
    assert trend.chart.datasets[-1]["label"] == "First touched"
    assert trend.table.rows[1][-2:] == ["9.5 h", "9.5 h"]
    assert trend.table.rows[-1][0] == "total"
    assert speed.chart is not None and speed.chart.datasets[0]["data"] == [None, 570.0]


def test_speed_to_lead_and_sla_compliance_by_team():
    answer = {"groups": [{"group": "emea", "leads": 3, "touched": 3, "first_touch_median_seconds": 120.0,
                          "first_touch_p90_seconds": 504.0, "sla_met": 2, "sla_breached": 1,
                          "within_sla_pct": 66.67, "breaches": 2, "escalations": 1}],
              "total": {"group": "total", "leads": 3, "touched": 3, "within_sla_pct": 66.67}}
    speed, sla = speed_sections(answer)
    assert speed.chart is not None and speed.chart.datasets[0] == {"label": "Median", "data": [2.0]}
    assert speed.table.rows[0] == ["emea", "3", "3", "2.0 min", "8.4 min", "2", "1", "66.7 %", "2", "1"]
    assert sla.chart is not None and sla.chart.datasets[0]["data"] == [66.67]


def test_data_quality_rates_and_completeness_per_group_and_bucket():
    row = {"group": "demo", "bucket": "2026-11-23T00:00:00+00:00", "fills": 4, "duplicate_rate": 0.25,
           "invalid_email_rate": 0.0, "invalid_phone_rate": 0.25, "account_match_rate": 0.75,
           "provider_success_rate": 1.0, "completeness": {"email": 1.0, "phone": 0.75}}
    total = {**row, "group": "(all)", "bucket": None, "fills": 6}
    problems, completeness = quality_sections({"rows": [row], "total": total})
    assert problems.chart is not None and problems.chart.datasets[0]["label"] == "demo · 2026-11-23"
    assert problems.chart.datasets[0]["data"][:2] == [0.0, 25.0]
    assert problems.table.rows[-1][:3] == ["total", "6", "0.0 %"]
    assert completeness.chart is not None and completeness.chart.labels == ["email", "phone"]
    assert completeness.table.rows[0] == ["demo · 2026-11-23", "100.0 %", "75.0 %"]


async def test_every_report_page_and_csv_sends_a_signed_out_browser_to_sign_in():
    app = create_app(Settings(environment="development"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
        for path in ("/reports", *(f"/reports/{key}{suffix}" for key in REPORTS_BY_KEY for suffix in ("", ".csv"))):
            response = await client.get(path, params={"from": "not a day"})
            assert response.status_code == 303, (path, response.text)
            assert response.headers["location"] == f"/?next={quote(path)}"


def test_today_is_the_day_in_the_report_s_time_zone():
    # 23:30 UTC on 3 December is already 00:30 on the 4th in Paris: a lead captured then belongs to the window.
    late = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
    paris = parse_filters({"tz": "Europe/Paris"}, TREND.choices, late, with_tz=True)
    assert paris.values["through"] == "2026-12-04"
    assert paris.api_params["to"] == "2026-12-05T00:00:00+01:00"
    utc = parse_filters({}, FUNNEL.choices, late, with_tz=False)
    assert utc.values["through"] == "2026-12-03"
