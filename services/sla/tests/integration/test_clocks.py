"""First-touch clocks with an injected clock: they fire on time, survive restarts, restart on re-routing,
and honour business hours and holidays; warnings and breaches reach Kafka as lead.sla.v1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from leadflow_contracts import LeadRouted, LeadSla, LeadTouched, RoutedOwner, topics
from leadflow_kit.app import app_deps
from leadflow_kit.clock import FrozenClock

SECOND = timedelta(seconds=1)


def routed(env: Any, lead_id: str, at: datetime, tier: str, rep: str, team: str, **extra: Any) -> Any:
    data = LeadRouted(lead_id=lead_id, assignment_id=f"as-{rep}-{at.timestamp()}", reason="test", tier=tier,
                      owner=RoutedOwner(rep_id=rep, team_id=team), **extra)
    return env.lead_event(data, lead_id, at, at - SECOND, "routing")


def touched(env: Any, lead_id: str, at: datetime, touch_type: str = "contacted") -> Any:
    data = LeadTouched(lead_id=lead_id, touch_id=f"t-{at.timestamp()}", touch_type=touch_type, occurred_at=at)
    return env.lead_event(data, lead_id, at, at, "routing")


async def open_clock_of(env: Any, lead_id: str, status: str = "open", owner: str | None = None) -> Any:
    async def probe() -> Any:
        rows = await env.fetch("SELECT * FROM sla_clock WHERE lead_id = $1 AND status = $2", lead_id, status)
        rows = [r for r in rows if owner is None or r["owner_rep_id"] == owner]
        return rows[0] if rows else None

    return await env.eventually(probe)


async def test_a_hot_clock_warns_at_four_minutes_breaches_at_five_and_restarts_on_reroute(
    sla_env: Any, apps: Any
) -> None:
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    clock = FrozenClock(t0)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    scheduler = app_deps(app).scheduler
    lead_id = sla_env.new_lead_id()
    await sla_env.send(routed(sla_env, lead_id, t0, "hot", "rep-ada", "team-emea"))
    first = await open_clock_of(sla_env, lead_id)
    assert (first["warning_at"], first["due_at"]) == (t0 + 240 * SECOND, t0 + 300 * SECOND)

    clock.set(t0 + 239 * SECOND)
    assert await scheduler.fire_due() == []
    clock.set(t0 + 240 * SECOND)
    assert [(f.lead_id, f.kind) for f in await scheduler.fire_due()] == [(lead_id, "warning")]
    assert await scheduler.fire_due() == []
    clock.set(t0 + 299 * SECOND)
    assert await scheduler.fire_due() == []
    clock.set(t0 + 300 * SECOND)
    assert [(f.lead_id, f.kind) for f in await scheduler.fire_due()] == [(lead_id, "breach")]
    clock.set(t0 + 3600 * SECOND)
    assert await scheduler.fire_due() == []

    # Routing re-routes on the breach: a fresh clock for the new owner; the old one is superseded.
    rerouted_at = t0 + 310 * SECOND
    await sla_env.send(routed(sla_env, lead_id, rerouted_at, "hot", "rep-bob", "team-emea", reroute=True,
                              previous_owner_rep_id="rep-ada", reroute_reason="sla_breach"))
    second = await open_clock_of(sla_env, lead_id, owner="rep-bob")
    assert second["id"] != first["id"] and second["owner_rep_id"] == "rep-bob"
    assert second["due_at"] == rerouted_at + 300 * SECOND
    old = (await sla_env.fetch("SELECT status, stop_reason FROM sla_clock WHERE id = $1", first["id"]))[0]
    assert (old["status"], old["stop_reason"]) == ("superseded", "rerouted")

    clock.set(rerouted_at + 300 * SECOND)
    assert [f.kind for f in await scheduler.fire_due()] == ["warning", "breach"]

    events = await sla_env.collect(topics.SLA, lambda e: e.subject == lead_id and e.type == LeadSla.EVENT_TYPE,
                                   4)
    assert [(e.data.kind, e.data.owner_rep_id, e.data.breach_count, e.data.escalate) for e in events] == [
        ("warning", "rep-ada", 0, False),
        ("breach", "rep-ada", 1, False),
        ("warning", "rep-bob", 0, False),
        # The default breach limit is 2: the lead's second breach asks routing to escalate.
        ("breach", "rep-bob", 2, True),
    ]
    assert events[1].data.due_at == t0 + 300 * SECOND
    assert all(e.correlation_id == f"corr-{lead_id}" for e in events)

    # The touch stops the running clock; the sla events come back through Kafka onto the timeline.
    await sla_env.send(touched(sla_env, lead_id, rerouted_at + 400 * SECOND))
    await open_clock_of(sla_env, lead_id, status="stopped")

    async def timeline_complete() -> Any:
        body = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
        names = [s["stage"] for s in body["stages"]]
        return body if names.count("sla_breach") == 2 and "touched" in names else None

    body = await sla_env.eventually(timeline_complete)
    assert [s["stage"] for s in body["stages"]] == [
        "routed", "sla_warning", "sla_breach", "routed", "sla_warning", "sla_breach", "touched",
    ]
    assert [c["to_rep_id"] for c in body["owner_changes"]] == ["rep-ada", "rep-bob"]
    assert body["owner_changes"][1]["reason"] == "sla_breach"
    assert body["sla"]["state"] == "stopped"
    assert body["sla"]["outcome"] == "breached" and body["sla"]["breach_count"] == 2
    assert [c["status"] for c in body["sla"]["clocks"]] == ["superseded", "stopped"]

    await scheduler.refresh_open_clocks()
    metrics = (await client.get("/metrics")).text
    assert sla_env.sample(metrics, "leadflow_sla_breaches_total", tier="hot", team="team-emea") == 2
    assert sla_env.sample(metrics, "leadflow_sla_warnings_total", tier="hot", team="team-emea") == 2
    assert sla_env.sample(metrics, "leadflow_sla_open_clocks", tier="hot") == 0


async def test_a_restart_loses_no_clock(sla_env: Any, apps: Any) -> None:
    t0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    clock = FrozenClock(t0)
    first, _ = await apps.start(clock, scheduler_interval_seconds=3600)
    lead_id = sla_env.new_lead_id()
    await sla_env.send(routed(sla_env, lead_id, t0, "warm", "rep-cy", "team-amer"))
    await open_clock_of(sla_env, lead_id)
    clock.set(t0 + 50 * 60 * SECOND)
    assert [f.kind for f in await app_deps(first).scheduler.fire_due()] == ["warning"]
    await apps.stop_all()

    # Down across the deadline; the next process fires the breach as soon as it starts.
    clock.set(t0 + 2 * 3600 * SECOND)
    second, _ = await apps.start(clock, scheduler_interval_seconds=3600)

    async def breached() -> Any:
        rows = await sla_env.fetch("SELECT kind FROM sla_notice WHERE lead_id = $1 ORDER BY threshold_at", lead_id)
        return [r["kind"] for r in rows] if len(rows) == 2 else None

    assert await sla_env.eventually(breached) == ["warning", "breach"]
    assert await app_deps(second).scheduler.fire_due() == []
    events = await sla_env.collect(topics.SLA, lambda e: e.subject == lead_id and e.type == LeadSla.EVENT_TYPE,
                                   2)
    assert [e.data.kind for e in events] == ["warning", "breach"]


async def test_business_hours_and_public_holidays_are_honoured(sla_env: Any, apps: Any) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    routed_at = datetime(2026, 12, 24, 16, 58, tzinfo=berlin).astimezone(UTC)  # Christmas Eve, a Thursday
    clock = FrozenClock(routed_at)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    created = await client.post("/v1/admin/sla-policies", json={
        "tier": "hot", "team_id": "team-de", "target_seconds": 300,
        "business_hours": {"timezone": "Europe/Berlin", "start": "09:00", "end": "17:00",
                           "holiday_country": "DE"},
    })
    assert created.status_code == 201, created.text
    lead_id = sla_env.new_lead_id()
    await sla_env.send(routed(sla_env, lead_id, routed_at, "hot", "rep-dora", "team-de"))
    row = await open_clock_of(sla_env, lead_id)
    assert row["policy_id"] == created.json()["id"]
    # Two minutes on Thursday; 25 and 26 December are holidays, then the weekend; Monday 09:00 on.
    assert row["warning_at"] == datetime(2026, 12, 28, 9, 2, tzinfo=berlin)
    assert row["due_at"] == datetime(2026, 12, 28, 9, 3, tzinfo=berlin)

    scheduler = app_deps(app).scheduler
    clock.set(datetime(2026, 12, 25, 12, 0, tzinfo=berlin))
    assert await scheduler.fire_due() == []
    clock.set(datetime(2026, 12, 28, 9, 1, 59, tzinfo=berlin))
    assert await scheduler.fire_due() == []
    clock.set(datetime(2026, 12, 28, 9, 2, tzinfo=berlin))
    assert [f.kind for f in await scheduler.fire_due()] == ["warning"]
    clock.set(datetime(2026, 12, 28, 9, 3, tzinfo=berlin))
    assert [f.kind for f in await scheduler.fire_due()] == ["breach"]

    # The timeline reports the clock in working time: five minutes elapsed, none remaining.
    body = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
    current = body["sla"]["current"]
    assert current["elapsed_seconds"] == 300 and current["remaining_seconds"] == 0
    assert current["business_hours"]["holiday_country"] == "DE"


async def test_a_touch_before_the_warning_means_nothing_fires(sla_env: Any, apps: Any) -> None:
    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    clock = FrozenClock(t0)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    lead_id = sla_env.new_lead_id()
    await sla_env.send(routed(sla_env, lead_id, t0, "hot", "rep-eve", "team-emea"))
    await open_clock_of(sla_env, lead_id)
    await sla_env.send(touched(sla_env, lead_id, t0 + 100 * SECOND, "meeting_booked"))
    stopped = await open_clock_of(sla_env, lead_id, status="stopped")
    assert (stopped["stop_reason"], stopped["next_fire_at"]) == ("meeting_booked", None)
    clock.set(t0 + 3600 * SECOND)
    assert [f for f in await app_deps(app).scheduler.fire_due() if f.lead_id == lead_id] == []
    body = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
    assert body["sla"]["outcome"] == "met" and body["sla"]["current"]["met"] is True


async def test_a_touch_that_overtakes_its_routed_event_leaves_no_running_clock(sla_env: Any, apps: Any) -> None:
    t0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    clock = FrozenClock(t0)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    lead_id = sla_env.new_lead_id()
    # Touches and routings travel on different topics, so the touch may be consumed first.
    await sla_env.send(touched(sla_env, lead_id, t0 + 60 * SECOND))

    async def touch_recorded() -> Any:
        response = await client.get(f"/v1/leads/{lead_id}/timeline")
        return response.status_code == 200 and response.json()["stages"]

    await sla_env.eventually(touch_recorded)
    early = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
    assert (early["sla"]["state"], early["sla"]["current"]) == ("stopped", None)
    await sla_env.send(routed(sla_env, lead_id, t0, "hot", "rep-fay", "team-emea"))
    stopped = await open_clock_of(sla_env, lead_id, status="stopped")
    assert (stopped["stopped_at"], stopped["stop_reason"], stopped["next_fire_at"]) == (
        t0 + 60 * SECOND, "contacted", None)
    clock.set(t0 + 3600 * SECOND)
    assert [f for f in await app_deps(app).scheduler.fire_due() if f.lead_id == lead_id] == []
    body = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
    assert [s["stage"] for s in body["stages"]] == ["routed", "touched"]
    assert body["sla"]["outcome"] == "met"


async def test_a_repeat_fill_that_keeps_the_owner_keeps_its_clock_running_or_stopped(sla_env: Any, apps: Any) -> None:
    t0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    clock = FrozenClock(t0)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    lead_id = sla_env.new_lead_id()
    await sla_env.send(routed(sla_env, lead_id, t0, "hot", "rep-gus", "team-emea"))
    first = await open_clock_of(sla_env, lead_id)
    # The prospect fills the form again 2 minutes later; routing keeps the owner.
    await sla_env.send(routed(sla_env, lead_id, t0 + 120 * SECOND, "hot", "rep-gus", "team-emea", kept_owner=True))

    async def repeat_recorded() -> Any:
        body = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
        return len([s for s in body["stages"] if s["stage"] == "routed"]) == 2

    await sla_env.eventually(repeat_recorded)
    clocks = await sla_env.fetch("SELECT id, status, due_at FROM sla_clock WHERE lead_id = $1", lead_id)
    assert [(c["id"], c["status"], c["due_at"]) for c in clocks] == [(first["id"], "open", t0 + 300 * SECOND)]

    # Once the rep has touched the lead they are working it: a later repeat fill keeps the stopped
    # clock, so no fresh deadline breaches and re-routes the lead away from them.
    await sla_env.send(touched(sla_env, lead_id, t0 + 200 * SECOND))
    await open_clock_of(sla_env, lead_id, status="stopped")
    await sla_env.send(routed(sla_env, lead_id, t0 + 900 * SECOND, "hot", "rep-gus", "team-emea", kept_owner=True))

    async def third_recorded() -> Any:
        body = (await client.get(f"/v1/leads/{lead_id}/timeline")).json()
        return len([s for s in body["stages"] if s["stage"] == "routed"]) == 3

    await sla_env.eventually(third_recorded)
    clocks = await sla_env.fetch("SELECT id, status, stopped_at FROM sla_clock WHERE lead_id = $1", lead_id)
    assert [(c["id"], c["status"], c["stopped_at"]) for c in clocks] == [(first["id"], "stopped", t0 + 200 * SECOND)]
    clock.set(t0 + 7200 * SECOND)
    assert [f for f in await app_deps(app).scheduler.fire_due() if f.lead_id == lead_id] == []
