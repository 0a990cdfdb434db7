"""The SLA policy and rep calendar admin API, with its scopes and field-level errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from leadflow_contracts import LeadRouted, RoutedOwner


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
