"""Funnel KPIs over the leads captured in a window, grouped by source, campaign, form, team or rep."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from leadflow_kit import csvexport
from leadflow_kit.csvexport import Cell
from leadflow_sla import domain, revenue

GroupBy = Literal["source", "utm_campaign", "form", "team", "rep"]
NO_VALUE = "(none)"


def funnel_report(
    leads: Sequence[domain.FunnelLead], start: datetime, end: datetime, group_by: GroupBy | None,
    rates: revenue.Rates, spends: Sequence[revenue.Spend] = (),
) -> dict[str, Any]:
    """The cohort is the leads captured in [start, end); each is counted at every stage it has reached.

    Its money: the cohort's deals, and the spend on the days of the window (revenue.py). Grouped by source or
    campaign, a group with spend but no lead shows too: money spent on nothing is worth seeing.
    """
    groups, total = domain.funnel(leads)
    in_window, without_rate = spend_in_reporting_currency(spends, start, end, group_by, rates)
    money, money_total = revenue.money_groups(leads, in_window, rates)
    total.update(money_total.report(total["counts"]))
    if group_by:
        groups += [domain.FunnelGroup(key).report() for key in money.keys() - {g["group"] for g in groups}]
        groups.sort(key=lambda group: str(group["group"]))
        for group in groups:
            group.update(money.get(group["group"], revenue.MoneyGroup()).report(group["counts"]))
    return {
        "from": start,
        "to": end,
        "group_by": group_by,
        "reporting_currency": rates.reporting_currency,
        "spend_without_rate": without_rate,
        "groups": groups if group_by else [],
        "total": total,
    }


SPEND_GROUP: dict[GroupBy, str] = {"source": "source", "utm_campaign": "utm_campaign"}


def spend_in_reporting_currency(
    spends: Sequence[revenue.Spend], start: datetime, end: datetime, group_by: GroupBy | None, rates: revenue.Rates
) -> tuple[list[tuple[str | None, Decimal]], int]:
    """Each spend's share of the window, converted, with the group it counts in (None under a grouping spend
    does not have, such as team); and how many spends were left out for want of a rate."""
    attribute = SPEND_GROUP.get(group_by) if group_by else None
    converted: list[tuple[str | None, Decimal]] = []
    without_rate = 0
    for spend in spends:
        value = revenue.spend_in_window_converted(spend, start, end, rates)
        if value is None:
            without_rate += 1
        elif value:
            converted.append((getattr(spend, attribute) if attribute else None, value))
    return converted, without_rate


RATE_COLUMNS = (
    "captured_to_mql", "mql_to_accepted", "accepted_to_sql", "mql_to_sql", "sql_to_opportunity",
    "opportunity_to_converted", "captured_to_converted",
)
CSV_COLUMNS = (
    "group", *domain.FUNNEL_STAGES, *RATE_COLUMNS,
    "touched", "speed_to_lead_median_seconds", "speed_to_lead_p90_seconds",
    "sla_met", "sla_breached", "sla_compliance_pct",
    "pipeline", "revenue", "deals_open", "deals_won", "deals_lost", "deals_without_rate", "win_rate",
    "average_deal_size", "spend", "cost_per_lead", "cost_per_mql", "cost_per_opportunity", "return_on_spend",
)
MONEY_COLUMNS = ("average_deal_size", "spend", "cost_per_lead", "cost_per_mql", "cost_per_opportunity",
                 "return_on_spend")


def to_csv(report: dict[str, Any]) -> str:
    """Group names are UTM values anonymous visitors chose: written spreadsheet-safe."""
    rows: list[list[Cell]] = []
    for group in [*report["groups"], report["total"]]:
        speed, sla = group["speed_to_lead_seconds"], group["sla"]
        rows.append(
            [group["group"], *(group["counts"][s] for s in domain.FUNNEL_STAGES)]
            + [_cell(group["conversion_rates"][name]) for name in RATE_COLUMNS]
            + [speed["touched"], _cell(speed["median"]), _cell(speed["p90"]),
               sla["met"], sla["breached"], _cell(sla["compliance_pct"])]
            + _money_cells(group)
        )
    return csvexport.to_csv(CSV_COLUMNS, rows)


def _money_cells(group: dict[str, Any]) -> list[Cell]:
    """Money as the JSON gives it (decimal strings in the reporting currency); an unknown figure is empty."""
    deals = group["deals"]
    return [group["pipeline"], group["revenue"], deals["open"], deals["won"], deals["lost"], deals["without_rate"],
            _cell(group["win_rate"]), *(group[name] or "" for name in MONEY_COLUMNS)]


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
