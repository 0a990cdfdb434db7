"""Issue 18: a tier upgrade of an assigned, untouched lead tightens its running clock, a downgrade never
loosens it, and a lead sent to nurture has no clock (held at its first fill, or sent back by the CRM)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import LeadRouted, LeadScored, RoutedOwner
from leadflow_kit.clock import FrozenClock

SECOND = timedelta(seconds=1)


def routed(env: Any, lead_id: str, at: datetime, tier: str, **extra: Any) -> Any:
    data = LeadRouted(lead_id=lead_id, assignment_id=f"as-{at.timestamp()}", reason="test", tier=tier,
                      owner=RoutedOwner(rep_id="rep-ada", team_id="team-emea"), **extra)
    return env.lead_event(data, lead_id, at, at - SECOND, "routing")


async def open_clock_of(env: Any, lead_id: str, status: str = "open") -> Any:
    async def probe() -> Any:
        rows = await env.fetch("SELECT * FROM sla_clock WHERE lead_id = $1 AND status = $2", lead_id, status)
        return rows[0] if rows else None

    return await env.eventually(probe)


def rescored(env: Any, lead_id: str, at: datetime, tier: str) -> Any:
    data = LeadScored(lead_id=lead_id, score={"hot": 90, "warm": 60, "cold": 20}[tier], fit_grade="A",
                      engagement_level=3, tier=tier, is_mql=tier != "cold", model_version="v1",  # type: ignore[arg-type]
                      lifecycle_stage="mql", trigger="activity")
    return env.lead_event(data, lead_id, at, at - 10 * SECOND, "scoring")


def nurtured(env: Any, lead_id: str, at: datetime) -> Any:
    data = LeadRouted(lead_id=lead_id, assignment_id=f"as-nurture-{at.timestamp()}", reason="not an MQL yet",
                      tier="cold", queue="nurture", nurture=True)
    return env.lead_event(data, lead_id, at, at - SECOND, "routing")


async def test_warm_to_hot_tightens_the_running_clock_and_hot_to_warm_never_loosens_it(
    sla_env: Any, apps: Any
) -> None:
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    await apps.start(FrozenClock(t0), scheduler_interval_seconds=3600)
    lead_id = sla_env.new_lead_id()
    await sla_env.send(rescored(sla_env, lead_id, t0 - SECOND, "warm"))
    await sla_env.send(routed(sla_env, lead_id, t0, "warm"))
    warm = await open_clock_of(sla_env, lead_id)
    assert (warm["tier"], warm["due_at"]) == ("warm", t0 + timedelta(hours=1))

    await sla_env.send(rescored(sla_env, lead_id, t0 + 60 * SECOND, "hot"))

    async def tightened() -> Any:
        rows = await sla_env.fetch("SELECT * FROM sla_clock WHERE lead_id = $1 AND tier = 'hot'", lead_id)
        return rows[0] if rows else None

    hot = await sla_env.eventually(tightened)
    # The same clock, counted from when it started: 5 minutes, warning at 4.
    assert hot["id"] == warm["id"] and hot["status"] == "open"
    assert (hot["warning_at"], hot["due_at"], hot["next_fire_at"]) == (
        t0 + 240 * SECOND, t0 + 300 * SECOND, t0 + 240 * SECOND)

    await sla_env.send(rescored(sla_env, lead_id, t0 + 120 * SECOND, "warm"))
    await sla_env.send(rescored(sla_env, lead_id, t0 + 130 * SECOND, "cold"))
    marker = sla_env.new_lead_id()
    await sla_env.send(rescored(sla_env, marker, t0 + 131 * SECOND, "hot"))
    await sla_env.eventually(lambda: _facts(sla_env, marker))
    [after] = await sla_env.fetch("SELECT * FROM sla_clock WHERE lead_id = $1", lead_id)
    assert (after["tier"], after["due_at"]) == ("hot", t0 + 300 * SECOND)


async def test_a_lead_in_nurture_has_no_clock_and_one_sent_back_loses_its_clock(sla_env: Any, apps: Any) -> None:
    t0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    await apps.start(FrozenClock(t0), scheduler_interval_seconds=3600)
    held, sent_back = sla_env.new_lead_id(), sla_env.new_lead_id()
    await sla_env.send(nurtured(sla_env, held, t0))
    await sla_env.send(routed(sla_env, sent_back, t0, "warm"))
    await open_clock_of(sla_env, sent_back)
    await sla_env.send(nurtured(sla_env, sent_back, t0 + 60 * SECOND))
    retired = await open_clock_of(sla_env, sent_back, status="superseded")
    assert retired["stop_reason"] == "nurture"
    facts = await sla_env.eventually(lambda: _facts(sla_env, held))
    assert facts["first_routed_at"] is None
    assert await sla_env.fetch("SELECT id FROM sla_clock WHERE lead_id = $1", held) == []

    # Handed to sales later (the MQL moment): a clock for its tier opens then.
    handed = t0 + 600 * SECOND
    await sla_env.send(routed(sla_env, held, handed, "hot", reroute=True,
                              reroute_reason="mql"))
    clock = await open_clock_of(sla_env, held)
    assert (clock["started_at"], clock["due_at"]) == (handed, handed + 300 * SECOND)


async def _facts(env: Any, lead_id: str) -> Any:
    rows = await env.fetch("SELECT * FROM lead WHERE lead_id = $1", lead_id)
    return rows[0] if rows else None
