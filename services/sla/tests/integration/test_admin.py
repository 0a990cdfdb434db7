"""The SLA policy and rep calendar admin API, with its scopes and field-level errors."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from leadflow_contracts import Event, LeadRouted, RoutedOwner, SlaPolicyChanged, decode, topics


async def test_default_policies_are_there_from_the_start(apps: Any) -> None:
    _, client = await apps.start(wait_assigned=False)
    response = await client.get("/v1/admin/sla-policies")
    assert response.status_code == 200
    defaults = {p["tier"]: p for p in response.json() if p["team_id"] is None}
    assert {t: p["target_seconds"] for t, p in defaults.items()} == {"hot": 300, "warm": 3600, "cold": 86400}
    assert {p["warning_ratio"] for p in defaults.values()} == {0.8}
    assert all(p["business_hours"] is None and p["active"] for p in defaults.values())


async def test_policy_lifecycle_and_errors(apps: Any) -> None:
    _, client = await apps.start(wait_assigned=False)
    body = {"tier": "warm", "team_id": "team-lifecycle", "target_seconds": 1800, "breach_limit": 3,
            "business_hours": {"timezone": "America/New_York", "days": [0, 1, 2, 3, 4], "start": "08:30",
                               "end": "18:00", "holiday_country": "US", "holiday_subdivision": "NY"}}
    created = await client.post("/v1/admin/sla-policies", json=body)
    assert created.status_code == 201, created.text
    policy = created.json()
    assert policy["name"] == "warm team-lifecycle" and policy["warning_ratio"] == 0.8
    assert policy["business_hours"]["start"] == "08:30:00"

    duplicate = await client.post("/v1/admin/sla-policies", json=body)
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"][0]["code"] == "duplicate"

    bad = await client.post("/v1/admin/sla-policies", json={
        "tier": "lukewarm", "target_seconds": 0, "warning_ratio": 1.5,
        "business_hours": {"timezone": "Nowhere/Special"},
    })
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"tier", "target_seconds", "warning_ratio"} <= fields
    assert any(f.startswith("business_hours") for f in fields)

    patched = await client.patch(f"/v1/admin/sla-policies/{policy['id']}",
                                 json={"target_seconds": 900, "business_hours": None})
    assert patched.status_code == 200
    assert (patched.json()["target_seconds"], patched.json()["business_hours"]) == (900, None)
    assert (await client.get(f"/v1/admin/sla-policies/{policy['id']}")).json()["target_seconds"] == 900

    assert (await client.delete(f"/v1/admin/sla-policies/{policy['id']}")).status_code == 204
    assert (await client.get(f"/v1/admin/sla-policies/{policy['id']}")).status_code == 404
    assert (await client.delete(f"/v1/admin/sla-policies/{policy['id']}")).status_code == 404


async def test_scopes_guard_the_admin_api(apps: Any) -> None:
    _, client = await apps.start(wait_assigned=False)
    key = await client.post("/v1/admin/api-keys", json={"name": "viewer", "scopes": ["sla:read"]})
    assert key.status_code == 201
    viewer = {"Authorization": f"Bearer {key.json()['key']}"}
    assert (await client.get("/v1/admin/sla-policies", headers=viewer)).status_code == 200
    denied = await client.post("/v1/admin/sla-policies", headers=viewer,
                               json={"tier": "hot", "team_id": "x", "target_seconds": 60})
    assert denied.status_code == 403
    assert (await client.get("/v1/reports/funnel", headers=viewer)).status_code == 403
    assert (await client.get("/v1/admin/sla-policies", headers={"Authorization": ""})).status_code == 401

    sla_admin = await client.post("/v1/admin/api-keys", json={"name": "sla-admin", "scopes": ["sla:*"]})
    as_sla_admin = {"Authorization": f"Bearer {sla_admin.json()['key']}"}
    assert (await client.get("/v1/admin/webhooks/subscriptions", headers=as_sla_admin)).status_code == 403
    hooks = await client.post("/v1/admin/api-keys", json={"name": "hooks", "scopes": ["webhooks:*"]})
    as_hooks = {"Authorization": f"Bearer {hooks.json()['key']}"}
    assert (await client.get("/v1/admin/webhooks/subscriptions", headers=as_hooks)).status_code == 200
    assert (await client.post("/v1/admin/webhooks/subscriptions", json={}, headers=as_hooks)).status_code == 422
    assert (await client.get("/v1/admin/sla-policies", headers=as_hooks)).status_code == 403


async def test_a_policy_can_count_in_the_owners_own_hours(sla_env: Any, apps: Any) -> None:
    _, client = await apps.start()
    calendar = {"timezone": "America/New_York", "start": "09:00", "end": "17:00", "holiday_country": "US"}
    put = await client.put("/v1/admin/sla-calendars/rep-nyc", json=calendar)
    assert put.status_code == 200 and put.json()["business_hours"]["timezone"] == "America/New_York"
    assert (await client.get("/v1/admin/sla-calendars/rep-nyc")).status_code == 200
    created = await client.post("/v1/admin/sla-policies", json={
        "tier": "hot", "team_id": "team-owner-hours", "target_seconds": 600, "use_owner_hours": True,
        "business_hours": {"timezone": "Europe/Berlin"},
    })
    assert created.status_code == 201

    # Thanksgiving (26 Nov 2026) is a US holiday: routed Wednesday 16:55 New York, due Friday 09:05.
    routed_at = datetime(2026, 11, 25, 21, 55, tzinfo=UTC)
    lead_id = sla_env.new_lead_id()
    data = LeadRouted(lead_id=lead_id, assignment_id="as-nyc", reason="test", tier="hot",
                      owner=RoutedOwner(rep_id="rep-nyc", team_id="team-owner-hours"))
    await sla_env.send(sla_env.lead_event(data, lead_id, routed_at, routed_at, "routing"))

    async def clock() -> Any:
        rows = await sla_env.fetch("SELECT due_at, business_hours FROM sla_clock WHERE lead_id = $1", lead_id)
        return rows[0] if rows else None

    row = await sla_env.eventually(clock)
    assert row["due_at"] == datetime(2026, 11, 27, 14, 5, tzinfo=UTC)
    assert (await client.delete("/v1/admin/sla-calendars/rep-nyc")).status_code == 204
    assert (await client.get("/v1/admin/sla-calendars/rep-nyc")).status_code == 404


async def _sla_policies_records(env: Any, keys: set[str], count: int) -> list[tuple[str, Event[Any] | None]]:
    """The first ``count`` records of ``keys`` on sla.policies, read from the start (None: a tombstone)."""
    consumer = AIOKafkaConsumer(f"{env.topic_prefix}{topics.SLA_POLICIES}",
                                bootstrap_servers=env.infra.bootstrap_servers, group_id=f"reader-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    found: list[tuple[str, Event[Any] | None]] = []
    try:
        async with asyncio.timeout(20):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    found += [(r.key.decode(), decode(r.value, list(r.headers)) if r.value is not None else None)
                              for r in records if r.key is not None and r.key.decode() in keys]
    finally:
        await consumer.stop()
    return found


async def test_policy_and_calendar_changes_are_published_for_routing_s_replica(apps: Any) -> None:
    _, client = await apps.start(wait_assigned=False)
    team_id = f"team-{uuid.uuid4().hex[:6]}"
    created = await client.post("/v1/admin/sla-policies",
                                json={"tier": "hot", "team_id": team_id, "target_seconds": 120})
    policy_id = created.json()["id"]
    assert (await client.patch(f"/v1/admin/sla-policies/{policy_id}", json={"target_seconds": 90})).status_code == 200
    assert (await client.delete(f"/v1/admin/sla-policies/{policy_id}")).status_code == 204
    rep_id = f"rep-{uuid.uuid4().hex[:6]}"
    hours = {"timezone": "Europe/Berlin", "start": "08:00", "end": "16:00"}
    assert (await client.put(f"/v1/admin/sla-calendars/{rep_id}", json=hours)).status_code == 200
    assert (await client.delete(f"/v1/admin/sla-calendars/{rep_id}")).status_code == 204

    records = await _sla_policies_records(apps.env, {policy_id, f"rep:{rep_id}"}, 7)

    policies = [event.data for key, event in records if key == policy_id and event is not None]
    assert all(isinstance(p, SlaPolicyChanged) for p in policies)
    assert [p.policy.target_seconds if p.policy else None for p in policies] == [120, 90, None]
    assert [event for key, event in records if key == policy_id][-1] is None  # the tombstone ends the key
    calendars = [event.data for key, event in records if key == f"rep:{rep_id}" and event is not None]
    assert [c.business_hours.start.isoformat() if c.business_hours else None for c in calendars] == ["08:00:00", None]
    assert [event for key, event in records if key == f"rep:{rep_id}"][-1] is None


async def test_every_policy_is_published_again_at_start_up(apps: Any) -> None:
    # Written behind the admin API's back (a restore, a migration): only the start-up republish tells routing.
    policy_id = f"restored-{uuid.uuid4().hex[:6]}"
    await apps.env.fetch("INSERT INTO sla_policy (id, name, tier, team_id, target_seconds, warning_ratio, breach_limit)"
                         " VALUES ($1, 'restored', 'warm', $1, 1200, 0.5, 2)", policy_id)
    await apps.start(wait_assigned=False)

    [(_, event)] = await _sla_policies_records(apps.env, {policy_id}, 1)
    assert event is not None and isinstance(event.data, SlaPolicyChanged) and event.data.policy is not None
    assert (event.data.policy.tier, event.data.policy.target_seconds, event.data.policy.warning_ratio) == (
        "warm", 1200, 0.5)
