"""The SQL of the funnel gauges: the leads captured since a time, counted per source, campaign and stage, and
their speed to lead and SLA outcomes per team; and the figures' row, which one replica computes and every
replica publishes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


# Taken when nobody computed the figures since ``fresh_since`` and no other replica is computing them (its
# lease passed); the row is created by the first claim. Concurrent claims queue on the row: the second sees
# the first's lease and takes nothing.
_CLAIM = """
INSERT INTO funnel_gauge_figures AS f (id, computing_until) VALUES (1, $2)
ON CONFLICT (id) DO UPDATE SET computing_until = excluded.computing_until
WHERE (f.computed_at IS NULL OR f.computed_at < $3) AND (f.computing_until IS NULL OR f.computing_until <= $1)
RETURNING true"""


async def claim_figures(session: AsyncSession, now: datetime, lease_until: datetime, fresh_since: datetime) -> bool:
    """Whether this replica is to compute the figures now (leased to it until ``lease_until``)."""
    return bool(await (await driver_connection(session)).fetchval(_CLAIM, now, lease_until, fresh_since))


async def save_figures(session: AsyncSession, computed_at: datetime, figures: dict[str, Any]) -> None:
    await (await driver_connection(session)).execute(
        "UPDATE funnel_gauge_figures SET computed_at = $1, computing_until = NULL, figures = $2::jsonb WHERE id = 1",
        computed_at, json.dumps(figures))


async def give_up_figures(session: AsyncSession, lease_until: datetime) -> None:
    """End this replica's lease after a failed computation, so the next round (any replica's) computes."""
    await (await driver_connection(session)).execute(
        "UPDATE funnel_gauge_figures SET computing_until = NULL WHERE id = 1 AND computing_until = $1", lease_until)


async def published_figures(session: AsyncSession) -> tuple[datetime, dict[str, Any]] | None:
    """When the figures were last computed and what they were; None before the first computation."""
    row = await (await driver_connection(session)).fetchrow(
        "SELECT computed_at, figures FROM funnel_gauge_figures WHERE id = 1 AND computed_at IS NOT NULL")
    if row is None:
        return None
    figures = row["figures"]
    return row["computed_at"], json.loads(figures) if isinstance(figures, str) else figures
