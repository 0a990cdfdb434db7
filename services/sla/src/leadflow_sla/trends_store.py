"""The SQL of the reports over time and of speed to lead (leadflow_sla.trends), over the ``lead`` facts.

Reports run rarely: SQLAlchemy Core, except the speed-to-lead figures, one GROUPING SETS statement whose
percentiles PostgreSQL works out (percentile_cont)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_sla.reports import NO_VALUE
from leadflow_sla.tables import lead
from leadflow_sla.trends import CohortLead, LeadMoments, SpeedGroupBy, SpeedRow

_MOMENT_COLUMNS = (lead.c.captured_at, lead.c.mql_at, lead.c.accepted_at, lead.c.sql_at, lead.c.opportunity_at,
                   lead.c.converted_at, lead.c.first_touch_at)

# A lead's escalations are the routings that escalated it after a breach (lead.routed with escalated).
_SPEED_TO_LEAD = """
SELECT {column} AS group_key, GROUPING({column}) = 1 AS is_total,
       count(*) AS leads,
       count(l.speed_to_lead_seconds) AS touched,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY l.speed_to_lead_seconds) AS median_seconds,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY l.speed_to_lead_seconds) AS p90_seconds,
       count(*) FILTER (WHERE l.sla_outcome = 'met') AS sla_met,
       count(*) FILTER (WHERE l.sla_outcome = 'breached') AS sla_breached,
       coalesce(sum(l.breach_count), 0) AS breaches,
       coalesce(sum(e.escalations), 0) AS escalations
FROM lead AS l
CROSS JOIN LATERAL (
    SELECT count(*) AS escalations FROM lead_event
    WHERE lead_event.lead_id = l.lead_id AND lead_event.stage = 'routed'
      AND lead_event.details ->> 'escalated' = 'true'
) AS e
WHERE l.captured_at >= :start AND l.captured_at < :end AND l.merged_into IS NULL
GROUP BY GROUPING SETS (({column}), ())
"""
_SPEED_GROUP_COLUMNS: dict[SpeedGroupBy, str] = {"team": "l.team_id", "rep": "l.rep_id"}


async def in_period_moments(session: AsyncSession, start: datetime, end: datetime) -> list[LeadMoments]:
    """Every lead (merged fills left out) that reached a stage, or was first touched, in [start, end)."""
    in_window = [and_(column >= start, column < end) for column in _MOMENT_COLUMNS]
    statement = select(lead.c.speed_to_lead_seconds, *_MOMENT_COLUMNS).where(lead.c.merged_into.is_(None),
                                                                            or_(*in_window))
    return [LeadMoments(tuple(row[1:]), row[0]) for row in await session.execute(statement)]


async def cohort_leads(session: AsyncSession, start: datetime, end: datetime) -> list[CohortLead]:
    """The leads captured in [start, end), merged fills left out."""
    statement = select(lead.c.captured_at, lead.c.stage_rank, lead.c.speed_to_lead_seconds,
                       lead.c.sla_outcome).where(lead.c.captured_at >= start, lead.c.captured_at < end,
                                                 lead.c.merged_into.is_(None))
    return [CohortLead(*row) for row in await session.execute(statement)]


async def speed_to_lead(
    session: AsyncSession, start: datetime, end: datetime, group_by: SpeedGroupBy
) -> list[SpeedRow]:
    """Per owner's team or rep, and in total, over the leads captured in [start, end)."""
    statement = text(_SPEED_TO_LEAD.format(column=_SPEED_GROUP_COLUMNS[group_by]))
    rows = await session.execute(statement, {"start": start, "end": end})
    return [
        SpeedRow(
            group=None if row.is_total else (row.group_key or NO_VALUE), leads=row.leads, touched=row.touched,
            median_seconds=row.median_seconds, p90_seconds=row.p90_seconds, sla_met=row.sla_met,
            sla_breached=row.sla_breached, breaches=int(row.breaches), escalations=int(row.escalations),
        )
        for row in rows
    ]
