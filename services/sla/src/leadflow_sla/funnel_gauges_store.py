"""The SQL of the funnel gauges: the leads captured since a time, counted per source, campaign and stage, and
their speed to lead and SLA outcomes per team."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.db import driver_connection
from leadflow_sla.domain import FUNNEL_STAGES

# Merged fills are left out, as in the funnel report; a lead counts at every stage it has reached.
_REACHED = ",\n       ".join(f"count(*) FILTER (WHERE stage_rank >= {rank}) AS {stage}"
                            for rank, stage in enumerate(FUNNEL_STAGES))
FUNNEL_COUNTS = f"""
SELECT coalesce(source, '(none)') AS source, coalesce(utm_campaign, '(none)') AS campaign,
       {_REACHED}
FROM lead
WHERE captured_at >= $1 AND merged_into IS NULL
GROUP BY 1, 2"""

# The funnel report's figures per team: percentile_cont is domain.percentile's interpolation.
TEAM_SPEED = """
SELECT coalesce(team_id, '(none)') AS team,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY speed_to_lead_seconds) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY speed_to_lead_seconds) AS p90,
       count(*) FILTER (WHERE sla_outcome = 'met') AS met,
       count(*) FILTER (WHERE sla_outcome = 'breached') AS breached
FROM lead
WHERE captured_at >= $1 AND merged_into IS NULL
GROUP BY 1"""


@dataclass(frozen=True)
class TeamSpeed:
    team: str
    # None when no lead of the team was touched yet.
    p50: float | None
    p90: float | None
    met: int
    breached: int


async def funnel_counts(session: AsyncSession, since: datetime) -> list[tuple[str, str, dict[str, int]]]:
    """(source, campaign, leads at each funnel stage) of the leads captured since ``since``."""
    rows = await (await driver_connection(session)).fetch(FUNNEL_COUNTS, since)
    return [(row["source"], row["campaign"], {stage: row[stage] for stage in FUNNEL_STAGES}) for row in rows]


async def team_speeds(session: AsyncSession, since: datetime) -> list[TeamSpeed]:
    """Speed to lead (median, 90th percentile) and SLA outcomes per team of the leads captured since ``since``."""
    rows = await (await driver_connection(session)).fetch(TEAM_SPEED, since)
    return [TeamSpeed(row["team"], row["p50"], row["p90"], row["met"], row["breached"]) for row in rows]
