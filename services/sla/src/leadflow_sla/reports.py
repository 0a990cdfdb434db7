"""Funnel KPIs over the leads captured in a window, grouped by source, campaign, form, team or rep."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from leadflow_kit import csvexport
from leadflow_kit.csvexport import Cell
from leadflow_sla import domain

GroupBy = Literal["source", "utm_campaign", "form", "team", "rep"]
NO_VALUE = "(none)"


def funnel_report(
    leads: Iterable[domain.FunnelLead], start: datetime, end: datetime, group_by: GroupBy | None
) -> dict[str, Any]:
    """The cohort is the leads captured in [start, end); each is counted at every stage it has reached."""
    groups, total = domain.funnel(leads)
    return {
        "from": start,
        "to": end,
        "group_by": group_by,
        "groups": groups if group_by else [],
        "total": total,
    }


RATE_COLUMNS = (
    "captured_to_mql", "mql_to_accepted", "accepted_to_sql", "mql_to_sql", "sql_to_opportunity",
    "opportunity_to_converted", "captured_to_converted",
)
CSV_COLUMNS = (
    "group", *domain.FUNNEL_STAGES, *RATE_COLUMNS,
    "touched", "speed_to_lead_median_seconds", "speed_to_lead_p90_seconds",
    "sla_met", "sla_breached", "sla_compliance_pct",
)


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
        )
    return csvexport.to_csv(CSV_COLUMNS, rows)


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
