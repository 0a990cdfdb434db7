"""Reports: the funnel with its money, the funnel over time, speed to lead and SLA compliance, and data
quality, as charts (Chart.js, vendored) each with the table of its figures, filtered as the services'
report APIs are, and downloadable as the service's own CSV.

The figures are sla's ``/v1/reports/*`` and enrichment's ``/v1/reports/data-quality`` (docs/reports.md),
read with the console's key; the user's role decides which report they may open or download."""

# No `from __future__ import annotations`: each report's routes are made in a function whose role
# dependency FastAPI must see as an object, not as a string naming a local it cannot resolve.
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from leadflow_console.auth import Role, User, require_roles
from leadflow_console.clients import ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import render

DEFAULT_DAYS = 30
# Shown for a figure the service gives as null (no lead to compute it from): an en dash.
NO_FIGURE = "\u2013"
# The days a window may hold: LeadFlow has no lead before 2000 and none after 2100.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
# A chart with more series than this is unreadable; the table beside it still has every group.
MAX_CHART_SERIES = 8
STAGES = ("captured", "mql", "accepted", "sql", "opportunity", "converted")
STAGE_LABELS = {"captured": "Captured", "mql": "MQL", "accepted": "Accepted", "sql": "SQL",
                "opportunity": "Opportunity", "converted": "Converted", "first_touched": "First touched"}
INTERVALS = {"day": "Day", "week": "Week", "month": "Month"}
_TZ_NAME = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")


# -- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A select filter: its query parameter (the API's), label and the values it offers."""

    name: str
    label: str
    options: Mapping[str, str]
    default: str = ""


@dataclass
class Filters:
    """A report's filters as the form shows them (``values``) and as the service is asked (``api_params``).
    The window is whole days in ``tz``: from the first day's midnight to the midnight after the last."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    api_params: dict[str, str] = field(default_factory=dict)

    def query(self) -> str:
        return urlencode({k: v for k, v in self.values.items() if v})


def _day(raw: str | None, default: date, name: str, errors: dict[str, str]) -> date:
    if not raw:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        errors[name] = "Give a date as YYYY-MM-DD."
        return default
    if not FIRST_DAY <= day <= LAST_DAY:
        errors[name] = f"Give a day from {FIRST_DAY} to {LAST_DAY}."
        return default
    return day


def _zone(raw: str, errors: dict[str, str]) -> ZoneInfo:
    if _TZ_NAME.fullmatch(raw) and ".." not in raw:
        try:
            return ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    errors["tz"] = f"'{raw[:64]}' is not an IANA time zone name (e.g. UTC, Europe/Paris, America/New_York)."
    return ZoneInfo("UTC")


def parse_filters(params: Mapping[str, str], choices: Sequence[Choice], now: datetime, *, with_tz: bool) -> Filters:
    """The filters of ``params`` (a GET form), each wrong one named in ``errors`` with what to give."""
    errors: dict[str, str] = {}
    tz_name = (params.get("tz") or "UTC").strip() if with_tz else "UTC"
    zone = _zone(tz_name, errors)
    # Today where the report's days are counted: in Paris just after midnight it is already tomorrow in UTC's eyes.
    today = now.astimezone(zone).date()
    through = _day(params.get("through"), today, "through", errors)
    start = _day(params.get("from"), through - timedelta(days=DEFAULT_DAYS - 1), "from", errors)
    if "from" not in errors and "through" not in errors and start > through:
        errors["from"] = "The first day must not be after the last."
    values = {"from": start.isoformat(), "through": through.isoformat()}
    if with_tz:
        values["tz"] = tz_name
    api: dict[str, str] = {
        "from": datetime.combine(start, time(), zone).isoformat(),
        "to": datetime.combine(through + timedelta(days=1), time(), zone).isoformat(),
    }
    if with_tz:
        api["tz"] = tz_name
    for choice in choices:
        value = params.get(choice.name, choice.default)
        if value not in choice.options:
            errors[choice.name] = f"Choose one of: {', '.join(label for label in choice.options.values())}."
            value = choice.default
        values[choice.name] = value
        if value:
            api[choice.name] = value
    return Filters(values, errors, api)


# -- what a page shows ------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    """A chart drawn by static/reports.js from this spec; ``summary`` is its accessible name."""

    id: str
    kind: str  # Chart.js type: bar, line
    summary: str
    labels: list[str]
    datasets: list[dict[str, Any]]
    y_title: str = ""
    stacked: bool = False

    def spec(self) -> dict[str, Any]:
        return {"type": self.kind, "labels": self.labels, "datasets": self.datasets, "y_title": self.y_title,
                "stacked": self.stacked}


@dataclass(frozen=True)
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]  # the first cell of a row is its header


@dataclass(frozen=True)
class Section:
    title: str
    chart: Chart | None
    table: Table
    note: str = ""


@dataclass(frozen=True)
class Report:
    key: str
    title: str
    description: str
    service: str
    path: str
    roles: tuple[Role, ...]
    choices: tuple[Choice, ...]
    with_tz: bool
    sections: Callable[[dict[str, Any]], list[Section]]
    # A figure of the answer shown under the title (e.g. the reporting currency).
    facts: Callable[[dict[str, Any]], list[str]] = lambda _: []


# -- formatting -------------------------------------------------------------------------------


def count(value: Any) -> str:
    return NO_FIGURE if value is None else f"{int(value):,}"


def pct(rate: Any) -> str:
    """A share (0..1) as a percentage."""
    return NO_FIGURE if rate is None else f"{float(rate) * 100:.1f} %"


def pct_points(value: Any) -> str:
    """A percentage the service already gives as 0..100."""
    return NO_FIGURE if value is None else f"{float(value):.1f} %"


def duration(seconds: Any) -> str:
    if seconds is None:
        return NO_FIGURE
    s = float(seconds)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def money(value: Any, currency: str) -> str:
    return NO_FIGURE if value is None else f"{value} {currency}"


def number(value: Any) -> float | None:
    """A figure as the chart draws it (money comes as a decimal string)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def minutes(seconds: Any) -> float | None:
    value = number(seconds)
    return None if value is None else round(value / 60, 2)


def _groups(answer: Mapping[str, Any], key: str = "groups") -> list[dict[str, Any]]:
    rows = answer.get(key)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _charted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows[:MAX_CHART_SERIES]


def _more_note(rows: Sequence[Any]) -> str:
    if len(rows) > MAX_CHART_SERIES:
        return f"The chart shows the first {MAX_CHART_SERIES} of {len(rows)} groups; the table has them all."
    return ""


# -- the funnel -------------------------------------------------------------------------------


def funnel_sections(answer: dict[str, Any]) -> list[Section]:
    groups = _groups(answer)
    total = answer.get("total") or {}
    currency = str(answer.get("reporting_currency") or "")
    rows = [*groups, total] if groups else [total]
    charted = _charted(groups) or [total]
    stage_chart = Chart(
        "funnel-stages", "bar", "Leads at each funnel stage" + (" by group" if groups else ""),
        [STAGE_LABELS[s] for s in STAGES],
        [{"label": str(g.get("group", "total")), "data": [g.get("counts", {}).get(s, 0) for s in STAGES]}
         for g in charted], y_title="Leads")
    stage_table = Table("Leads at each stage, conversion, speed to lead and SLA",
                        ["Group", *(STAGE_LABELS[s] for s in STAGES), "Captured → converted",
                         "Speed to lead (median)", "SLA compliance"],
                        [[str(r.get("group", "total")), *(count(r.get("counts", {}).get(s)) for s in STAGES),
                          pct(r.get("conversion_rates", {}).get("captured_to_converted")),
                          duration(r.get("speed_to_lead_seconds", {}).get("median")),
                          pct_points(r.get("sla", {}).get("compliance_pct"))] for r in rows])
    rate_names = ("captured_to_mql", "mql_to_accepted", "accepted_to_sql", "sql_to_opportunity",
                  "opportunity_to_converted")
    rate_table = Table("Conversion between stages",
                       ["Group", "Captured → MQL", "MQL → accepted", "Accepted → SQL", "SQL → opportunity",
                        "Opportunity → converted"],
                       [[str(r.get("group", "total")), *(pct(r.get("conversion_rates", {}).get(n)) for n in rate_names)]
                        for r in rows])
    money_chart = Chart(
        "funnel-money", "bar", f"Pipeline and revenue ({currency}) by group", [str(g.get("group")) for g in charted],
        [{"label": "Pipeline", "data": [number(g.get("pipeline")) for g in charted]},
         {"label": "Revenue", "data": [number(g.get("revenue")) for g in charted]}], y_title=currency)
    money_table = Table(f"Pipeline, revenue and deals ({currency})",
                        ["Group", "Pipeline", "Revenue", "Open deals", "Won", "Lost", "Win rate",
                         "Average deal", "Return on spend"],
                        [[str(r.get("group", "total")), money(r.get("pipeline"), currency),
                          money(r.get("revenue"), currency), count(r.get("deals", {}).get("open")),
                          count(r.get("deals", {}).get("won")), count(r.get("deals", {}).get("lost")),
                          pct(r.get("win_rate")), money(r.get("average_deal_size"), currency),
                          NO_FIGURE if r.get("return_on_spend") is None else f"{r['return_on_spend']}x"] for r in rows])
    cost_chart = Chart(
        "funnel-cost", "bar", f"Cost per lead and per MQL ({currency}) by group",
        [str(g.get("group")) for g in charted],
        [{"label": "Cost per lead", "data": [number(g.get("cost_per_lead")) for g in charted]},
         {"label": "Cost per MQL", "data": [number(g.get("cost_per_mql")) for g in charted]}], y_title=currency)
    cost_table = Table(f"Spend and cost per lead ({currency})",
                       ["Group", "Spend", "Cost per lead", "Cost per MQL", "Cost per opportunity"],
                       [[str(r.get("group", "total")), money(r.get("spend"), currency),
                         money(r.get("cost_per_lead"), currency), money(r.get("cost_per_mql"), currency),
                         money(r.get("cost_per_opportunity"), currency)] for r in rows])
    note = _more_note(groups)
    return [Section("Funnel", stage_chart, stage_table, note),
            Section("Conversion rates", None, rate_table),
            Section("Revenue and pipeline", money_chart, money_table, note),
            Section("Cost per lead", cost_chart, cost_table, note)]


def funnel_facts(answer: dict[str, Any]) -> list[str]:
    facts = [f"Money in {answer.get('reporting_currency', '')}, at the currency rates in force now."]
    if answer.get("spend_without_rate"):
        facts.append(f"{answer['spend_without_rate']} spend(s) left out for want of a currency rate.")
    return facts


# -- the funnel over time ---------------------------------------------------------------------


def trend_sections(answer: dict[str, Any]) -> list[Section]:
    buckets = _groups(answer, "buckets")
    total = answer.get("total") or {}
    cohort = answer.get("kind") == "cohort"
    names = [*STAGES] if cohort else [*STAGES, "first_touched"]
    labels = [str(b.get("bucket")) for b in buckets]
    chart = Chart(
        "funnel-trend", "line",
        ("Leads captured in each period, by the stage they reached since" if cohort
         else "Leads reaching each stage in each period"),
        labels, [{"label": STAGE_LABELS[n], "data": [b.get("counts", {}).get(n, 0) for b in buckets]} for n in names],
        y_title="Leads")
    columns = ["Period", *(STAGE_LABELS[n] for n in names), "Speed to lead (median)", "Speed to lead (p90)"]
    if cohort:
        columns += ["Captured → MQL", "SLA compliance"]

    def cells(label: str, row: Mapping[str, Any]) -> list[str]:
        speed = row.get("speed_to_lead_seconds", {})
        out = [label, *(count(row.get("counts", {}).get(n)) for n in names), duration(speed.get("median")),
               duration(speed.get("p90"))]
        if cohort:
            out += [pct(row.get("conversion_rates", {}).get("captured_to_mql")),
                    pct_points(row.get("sla", {}).get("compliance_pct"))]
        return out

    table = Table("Cohorts by capture period" if cohort else "Events in each period", columns,
                  [*(cells(str(b.get("bucket")), b) for b in buckets), cells("total", total)])
    speed_chart = Chart(
        "trend-speed", "line", "Speed to lead in minutes, median and 90th percentile, by period", labels,
        [{"label": "Median", "data": [minutes(b.get("speed_to_lead_seconds", {}).get("median")) for b in buckets]},
         {"label": "90th percentile", "data": [minutes(b.get("speed_to_lead_seconds", {}).get("p90"))
                                               for b in buckets]}], y_title="Minutes")
    return [Section("Funnel by period", chart, table, str(answer.get("description", ""))),
            Section("Speed to lead by period", speed_chart,
                    Table("Speed to lead by period", ["Period", "Median", "90th percentile"],
                          [[str(b.get("bucket")), duration(b.get("speed_to_lead_seconds", {}).get("median")),
                            duration(b.get("speed_to_lead_seconds", {}).get("p90"))] for b in buckets]))]


def trend_facts(answer: dict[str, Any]) -> list[str]:
    facts = [f"Periods in {answer.get('tz', 'UTC')}"]
    if answer.get("week_starts") and answer.get("interval") == "week":
        facts[0] += f"; a week starts {answer['week_starts']}"
    return [facts[0] + "."]


# -- speed to lead and SLA compliance ---------------------------------------------------------


def speed_sections(answer: dict[str, Any]) -> list[Section]:
    groups = _groups(answer)
    total = answer.get("total") or {}
    charted = _charted(groups)
    labels = [str(g.get("group")) for g in charted]
    speed_chart = Chart(
        "speed-to-lead", "bar", "Time from capture to first touch in minutes, by group", labels,
        [{"label": "Median", "data": [minutes(g.get("first_touch_median_seconds")) for g in charted]},
         {"label": "90th percentile", "data": [minutes(g.get("first_touch_p90_seconds")) for g in charted]}],
        y_title="Minutes")
    sla_chart = Chart(
        "sla-compliance", "bar", "Share of decided leads first touched within their SLA, by group", labels,
        [{"label": "Within SLA (%)", "data": [number(g.get("within_sla_pct")) for g in charted]}],
        y_title="%")
    rows = [*groups, total]
    table = Table("Speed to lead and SLA compliance",
                  ["Group", "Leads", "Touched", "First touch (median)", "First touch (p90)", "Met SLA",
                   "Breached SLA", "Within SLA", "Breaches", "Escalations"],
                  [[str(r.get("group", "total")), count(r.get("leads")), count(r.get("touched")),
                    duration(r.get("first_touch_median_seconds")), duration(r.get("first_touch_p90_seconds")),
                    count(r.get("sla_met")), count(r.get("sla_breached")), pct_points(r.get("within_sla_pct")),
                    count(r.get("breaches")), count(r.get("escalations"))] for r in rows])
    note = _more_note(groups)
    return [Section("Speed to lead", speed_chart, table, note),
            Section("SLA compliance", sla_chart,
                    Table("SLA compliance", ["Group", "Met", "Breached", "Within SLA"],
                          [[str(r.get("group", "total")), count(r.get("sla_met")), count(r.get("sla_breached")),
                            pct_points(r.get("within_sla_pct"))] for r in rows]), note)]


# -- data quality -----------------------------------------------------------------------------

QUALITY_RATES = {"invalid_email_rate": "Invalid email", "invalid_phone_rate": "Invalid phone",
                 "free_email_rate": "Free email", "disposable_email_rate": "Disposable email",
                 "role_address_rate": "Role address", "duplicate_rate": "Duplicate",
                 "account_match_rate": "Account match"}


def _quality_label(row: Mapping[str, Any]) -> str:
    bucket = row.get("bucket")
    return f"{row.get('group')} · {str(bucket)[:10]}" if bucket else str(row.get("group"))


def quality_sections(answer: dict[str, Any]) -> list[Section]:
    rows = _groups(answer, "rows")
    total = answer.get("total") or {}
    charted = _charted(rows)
    rate_chart = Chart(
        "data-quality", "bar", "Share of form fills with each quality problem, by group", list(QUALITY_RATES.values()),
        [{"label": _quality_label(r), "data": [round((number(r.get(k)) or 0) * 100, 2) for k in QUALITY_RATES]}
         for r in charted] or [{"label": "total", "data": [round((number(total.get(k)) or 0) * 100, 2)
                                                           for k in QUALITY_RATES]}], y_title="% of fills")
    every = [*rows, {**total, "group": "total", "bucket": None}]
    table = Table("Data quality of form fills",
                  ["Group", "Fills", *QUALITY_RATES.values(), "Provider success"],
                  [[_quality_label(r), count(r.get("fills")), *(pct(r.get(k)) for k in QUALITY_RATES),
                    pct(r.get("provider_success_rate"))] for r in every])
    raw_completeness = total.get("completeness")
    completeness: dict[str, Any] = raw_completeness if isinstance(raw_completeness, dict) else {}
    fields = list(completeness)
    completeness_chart = Chart(
        "completeness", "bar", "Share of form fills that gave each field, all groups", fields,
        [{"label": "Given (%)", "data": [round((number(completeness[f]) or 0) * 100, 2) for f in fields]}],
        y_title="% of fills")
    completeness_table = Table("Completeness: fills that gave each field", ["Group", *fields],
                               [[_quality_label(r), *(pct((r.get("completeness") or {}).get(f)) for f in fields)]
                                for r in every])
    return [Section("Quality problems", rate_chart, table, _more_note(rows)),
            Section("Completeness", completeness_chart, completeness_table)]


# -- the reports ------------------------------------------------------------------------------

MARKETING: tuple[Role, ...] = ("marketing_ops",)
SLA_READERS: tuple[Role, ...] = ("marketing_ops", "sales_manager")

REPORTS: tuple[Report, ...] = (
    Report("funnel", "Funnel", "Leads at each stage, conversion, revenue and pipeline, cost per lead.",
           "sla", "/v1/reports/funnel", MARKETING,
           (Choice("group_by", "Group by", {"": "Nothing (totals)", "source": "Source", "utm_campaign": "Campaign",
                                            "form": "Form", "team": "Team", "rep": "Rep"}),),
           False, funnel_sections, funnel_facts),
    Report("trend", "Funnel over time", "The funnel by day, week or month: events in each period, or cohorts.",
           "sla", "", MARKETING,
           (Choice("view", "View", {"in_period": "Events in each period", "cohort": "Cohorts by capture period"},
                   "in_period"),
            Choice("interval", "Interval", INTERVALS, "week")),
           True, trend_sections, trend_facts),
    Report("speed-to-lead", "Speed to lead and SLA", "Time to first touch and SLA compliance by team or rep.",
           "sla", "/v1/reports/speed-to-lead", SLA_READERS,
           (Choice("group_by", "Group by", {"team": "Team", "rep": "Rep"}, "team"),),
           False, speed_sections),
    Report("data-quality", "Data quality", "What the form fills looked like: invalid, free, disposable, duplicate, "
           "completeness.", "enrichment", "/v1/reports/data-quality", MARKETING,
           (Choice("group_by", "Group by", {"": "Nothing (all fills)", "form": "Form", "source": "Source"}),
            Choice("interval", "Interval", {"": "Whole window", **INTERVALS})),
           False, quality_sections),
)
REPORTS_BY_KEY = {report.key: report for report in REPORTS}
TREND_PATHS = {"in_period": "/v1/reports/funnel/trend", "cohort": "/v1/reports/cohorts"}
# The service's name for a parameter -> the form field it came from.
SERVICE_FIELDS = {"from": "from", "to": "through", "tz": "tz", "interval": "interval", "group_by": "group_by"}


def service_call(report: Report, filters: Filters) -> tuple[str, dict[str, str]]:
    """The service path and query that answer ``report`` for ``filters``."""
    params = dict(filters.api_params)
    if report.key == "trend":
        return TREND_PATHS[params.pop("view")], params
    return report.path, params


def field_errors(error: ServiceError) -> dict[str, str]:
    """A service's 422 as messages next to the form fields it names (others under the form)."""
    found: dict[str, str] = {}
    for item in error.errors:
        name = str(item.get("field", "")).rsplit(".", 1)[-1]
        found[SERVICE_FIELDS.get(name, "")] = str(item.get("message") or error.detail)
    return found or {"": error.detail}


def csv_filename(report: Report, filters: Filters) -> str:
    return f"{report.key}-{filters.values['from']}-to-{filters.values['through']}.csv"


def visible_reports(user: User) -> list[Report]:
    return [report for report in REPORTS if user.has_role(*report.roles)]


router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("", response_class=HTMLResponse, summary="The reports the signed-in user's role may open")
async def reports_index(request: Request,
                        user: Annotated[User, Depends(require_roles(*SLA_READERS))]) -> HTMLResponse:
    return await render(request, "reports/index.html", {"reports": visible_reports(user)})


def _report_page(report: Report) -> Callable[..., Awaitable[Response]]:
    async def report_page(request: Request, console: ConsoleDep,
                          user: Annotated[User, Depends(require_roles(*report.roles))]) -> Response:
        filters = parse_filters(request.query_params, report.choices, console.clock.now(),
                                with_tz=report.with_tz)
        context: dict[str, Any] = {"report": report, "reports": visible_reports(user), "filters": filters,
                                   "sections": [], "facts": [], "unavailable": None}
        status = 200
        if filters.errors:
            status = 422
        else:
            path, params = service_call(report, filters)
            try:
                answer = await console.clients[report.service].get(path, params)
            except ServiceUnavailable as exc:
                context["unavailable"] = exc.message
                status = 503
            except ServiceError as exc:
                if exc.status != 422:
                    raise
                filters.errors.update(field_errors(exc))
                status = 422
            else:
                context["sections"] = report.sections(answer)
                context["facts"] = report.facts(answer)
                context["csv_href"] = f"/reports/{report.key}.csv?{filters.query()}"
        return await render(request, "reports/report.html", context, status_code=status)

    return report_page


def _report_csv(report: Report) -> Callable[..., Awaitable[Response]]:
    async def report_csv(request: Request, console: ConsoleDep,
                         user: Annotated[User, Depends(require_roles(*report.roles))]) -> Response:
        filters = parse_filters(request.query_params, report.choices, console.clock.now(),
                                with_tz=report.with_tz)
        if filters.errors:
            problems = "; ".join(f"{name or 'filters'}: {message}" for name, message in filters.errors.items())
            return await render(request, "error.html", {"status": 422, "title": "The filters are invalid",
                                                        "detail": problems}, status_code=422)
        path, params = service_call(report, filters)
        answer = await console.clients[report.service].request("GET", path, params={**params, "format": "csv"},
                                                               headers={"Accept": "text/csv"})
        return Response(answer.content, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{csv_filename(report, filters)}"',
            "Cache-Control": "no-store"})

    return report_csv


for _report in REPORTS:
    router.add_api_route(f"/{_report.key}", _report_page(_report), methods=["GET"], response_class=HTMLResponse,
                         summary=f"Report: {_report.title.lower()}", name=f"report_{_report.key}")
    router.add_api_route(f"/{_report.key}.csv", _report_csv(_report), methods=["GET"],
                         summary=f"Report: {_report.title.lower()}, as the service's CSV",
                         name=f"report_{_report.key}_csv")

page = Page(router, (NavItem("Reports", "/reports", SLA_READERS),))
