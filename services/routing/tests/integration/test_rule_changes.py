"""The consumer keeps the active routing rules per process, by version: an activation made anywhere
(here through the API, which never touches the consumer's copy) is followed at the next lead, a
re-activated older version brings its own rules back, and a draft changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from routing_harness import Collector, Env, Running, collecting, produce, running, scored

from leadflow_contracts import topics

pytestmark = pytest.mark.integration


async def _route_one(env: Env, routed: Collector) -> Any:
    lead = scored()
    await produce(env.infra.bootstrap_servers, env.prefix, [lead])
    await routed.wait(lambda: bool(routed.of(lead.subject)), what="lead.routed")
    return routed.of(lead.subject)[0].data


async def _new_rules(svc: Running, team_id: str, *, activate: bool = True) -> int:
    body = {"rules": [{"id": f"to-{team_id}", "team_id": team_id}], "activate": activate}
    response = await svc.post("/v1/admin/routing-rules", json=body)
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    return version


async def test_routing_follows_every_activation_of_the_rules(env: Env) -> None:
    async with collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed, \
            running(env.settings()) as svc:
        for team_id in ("north", "south"):
            assert (await svc.post("/v1/admin/teams", json={"id": team_id, "name": team_id})).status_code == 201
            rep = {"id": f"{team_id}-rep", "name": team_id, "team_id": team_id}
            assert (await svc.post("/v1/admin/reps", json=rep)).status_code == 201

        first = await _new_rules(svc, "north")
        assert (await _route_one(env, routed)).owner.rep_id == "north-rep"

        await _new_rules(svc, "south")
        to_south = await _route_one(env, routed)
        assert to_south.owner.rep_id == "south-rep" and to_south.rule_id == "to-south"

        assert (await svc.post(f"/v1/admin/routing-rules/versions/{first}/activate")).status_code == 200
        back_north = await _route_one(env, routed)
        assert back_north.owner.rep_id == "north-rep" and back_north.rule_id == "to-north"

        await _new_rules(svc, "south", activate=False)
        assert (await _route_one(env, routed)).rule_id == "to-north"
