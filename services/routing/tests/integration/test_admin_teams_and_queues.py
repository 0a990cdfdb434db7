"""Teams and queues can be renamed, and removed once nothing routes to them: a team without reps that the active
rules do not name, a queue no lead waits in and nothing falls back to. Anything else is a 409 that
says what still uses it, and an older rule set naming a removed team cannot be activated again."""

from __future__ import annotations

import pytest
from routing_harness import Env, collecting, produce, running, scored

from leadflow_contracts import topics

pytestmark = pytest.mark.integration


async def test_a_team_goes_once_no_rep_and_no_active_rule_uses_it(env: Env) -> None:
    async with running(env.settings()) as svc:
        for team_id in ("leaving", "staying"):
            assert (await svc.post("/v1/admin/teams", json={"id": team_id, "name": team_id})).status_code == 201
        assert (await svc.post("/v1/admin/reps", json={"id": "leaver", "name": "L", "team_id": "leaving"})
                ).status_code == 201
        old = await svc.post("/v1/admin/routing-rules", json={"rules": [{"id": "to-leaving", "team_id": "leaving"}]})
        assert old.status_code == 201, old.text

        has_reps = await svc.delete("/v1/admin/teams/leaving")
        assert has_reps.status_code == 409 and "still has reps (leaver)" in has_reps.json()["detail"]
        assert (await svc.patch("/v1/admin/reps/leaver", json={"team_id": "staying"})).status_code == 200
        named = await svc.delete("/v1/admin/teams/leaving")
        assert named.status_code == 409
        assert f"rules (version {old.json()['version']}) send leads to team 'leaving' (rules to-leaving)" in \
            named.json()["detail"]

        new = await svc.post("/v1/admin/routing-rules", json={"rules": [{"id": "to-staying", "team_id": "staying"}]})
        assert new.status_code == 201
        assert (await svc.delete("/v1/admin/teams/leaving")).status_code == 204
        assert (await svc.get("/v1/admin/teams/leaving")).status_code == 404
        assert (await svc.delete("/v1/admin/teams/leaving")).status_code == 404
        assert [t["id"] for t in (await svc.get("/v1/admin/teams")).json()] == ["staying"]

        # The old version still names the team: activating it again is refused, field by field.
        again = await svc.post(f"/v1/admin/routing-rules/versions/{old.json()['version']}/activate")
        assert again.status_code == 422
        assert again.json()["errors"] == [
            {"field": "rules.0.team_id", "code": "unknown", "message": "no team 'leaving'"}]
        assert (await svc.get("/v1/admin/routing-rules")).json()["version"] == new.json()["version"]


async def test_a_queue_goes_once_no_lead_waits_and_nothing_falls_back_to_it(env: Env) -> None:
    async with collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed, \
            running(env.settings()) as svc:
        for queue_id in ("waiting-room", "overflow"):
            body = {"id": queue_id, "name": queue_id}
            assert (await svc.post("/v1/admin/queues", json=body)).status_code == 201
        assert (await svc.post("/v1/admin/teams", json={"id": "q-team", "name": "Q", "fallback_queue": "overflow"})
                ).status_code == 201
        nobody = {"id": "nobody", "conditions": [{"field": "country", "op": "eq", "value": "ZZ"}], "team_id": "q-team"}
        rules = await svc.post("/v1/admin/routing-rules", json={"rules": [nobody], "fallback_queue": "waiting-room"})
        assert rules.status_code == 201, rules.text

        lead = scored()
        await produce(env.infra.bootstrap_servers, env.prefix, [lead])
        await routed.wait(lambda: bool(routed.of(lead.subject)), what="lead.routed")
        assert routed.of(lead.subject)[0].data.queue == "waiting-room"
        waits = await svc.delete("/v1/admin/queues/waiting-room")
        assert waits.status_code == 409 and "1 lead(s) wait in queue 'waiting-room'" in waits.json()["detail"]

        team_falls_back = await svc.delete("/v1/admin/queues/overflow")
        assert team_falls_back.status_code == 409
        assert "teams q-team fall back to queue 'overflow'" in team_falls_back.json()["detail"]
        assert (await svc.patch("/v1/admin/teams/q-team", json={"fallback_queue": None})).status_code == 200
        rules = await svc.post("/v1/admin/routing-rules", json={"rules": [nobody], "fallback_queue": "overflow"})
        rules_fall_back = await svc.delete("/v1/admin/queues/overflow")
        assert rules_fall_back.status_code == 409
        assert f"rules (version {rules.json()['version']}) fall back to queue 'overflow'" in \
            rules_fall_back.json()["detail"]

        await svc.post("/v1/admin/routing-rules", json={"rules": [nobody], "fallback_queue": "waiting-room"})
        assert (await svc.delete("/v1/admin/queues/overflow")).status_code == 204
        assert (await svc.delete("/v1/admin/queues/overflow")).status_code == 404
        assert "overflow" not in [q["id"] for q in (await svc.get("/v1/admin/queues")).json()]


async def test_a_queue_is_renamed_and_described(env: Env) -> None:
    async with running(env.settings()) as svc:
        assert (await svc.post("/v1/admin/queues", json={"id": "renamed", "name": "Old"})).status_code == 201
        changed = await svc.patch("/v1/admin/queues/renamed", json={"name": "New", "description": "for triage"})
        assert changed.status_code == 200, changed.text
        assert {k: changed.json()[k] for k in ("id", "name", "description", "waiting")} == {
            "id": "renamed", "name": "New", "description": "for triage", "waiting": 0}
        assert (await svc.patch("/v1/admin/queues/renamed", json={"name": None})).status_code == 422
        assert (await svc.patch("/v1/admin/queues/renamed", json={"name": ""})).status_code == 422
        assert (await svc.patch("/v1/admin/queues/ghost", json={"name": "x"})).status_code == 404
        assert (await svc.patch("/v1/admin/queues/renamed", json={})).json()["name"] == "New"
