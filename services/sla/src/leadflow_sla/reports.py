"""Funnel KPIs over the leads captured in a window, grouped by source, campaign, form, team or rep."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit import csvexport
from leadflow_kit.csvexport import Cell
from leadflow_sla import domain
from leadflow_sla.tables import lead

GroupBy = Literal["source", "utm_campaign", "form", "team", "rep"]
GROUP_COLUMNS = {
    "source": lead.c.source,
    "utm_campaign": lead.c.utm_campaign,
    "form": lead.c.form_key,
    "team": lead.c.team_id,
    "rep": lead.c.rep_id,
}
NO_VALUE = "(none)"


async def funnel_report(
    session: AsyncSession, start: datetime, end: datetime, group_by: GroupBy | None
) -> dict[str, Any]:
    """The cohort is the leads captured in [start, end); each is counted at every stage it has reached."""
    group_column = GROUP_COLUMNS[group_by] if group_by else None
    columns: list[Any] = [lead.c.stage_rank, lead.c.speed_to_lead_seconds, lead.c.sla_outcome]
    if group_column is not None:
        columns.append(group_column.label("group_key"))
    rows = (
        await session.execute(select(*columns).where(lead.c.captured_at >= start, lead.c.captured_at < end,
                                   lead.c.merged_into.is_(None)))
    ).all()
    items = [
        domain.FunnelLead(
            group=(row.group_key or NO_VALUE) if group_column is not None else "total",
            stage_rank=row.stage_rank,
            speed_to_lead_seconds=row.speed_to_lead_seconds,
            sla_outcome=row.sla_outcome,
        )
        for row in rows
    ]
    groups, total = domain.funnel(items)
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
