"""Admin-written `matches` patterns: one RE2 cannot run is a 422 naming its field when saved, activated
or dry-run (never a 500, never a dead-lettered lead), and one that would backtrack for hours in
Python's re routes a worst-case lead as fast as any other."""

from __future__ import annotations

from typing import Any

import pytest
from routing_harness import Env, collecting, produce, running, scored
from sqlalchemy import insert

from leadflow_contracts import topics
from leadflow_kit.db import Database
from leadflow_routing.tables import routing_ruleset

pytestmark = pytest.mark.integration

# A backreference and a look-ahead compile in Python's re; RE2 refuses both.
NOT_RE2 = [r"^(\w)\1", r"vp(?= sales)"]


def _rules(pattern: Any) -> dict[str, Any]:
    return {"rules": [
        {"id": "vps", "team_id": "sales", "conditions": [
            {"field": "country", "op": "eq", "value": "US"},
            {"field": "job_title", "op": "matches", "value": pattern}]},
        {"id": "rest", "team_id": "sales"},
    ]}


async def _team(svc: Any) -> None:
    assert (await svc.post("/v1/admin/teams", json={"id": "sales", "name": "Sales"})).status_code == 201
    assert (await svc.post("/v1/admin/reps", json={"id": "ada", "name": "Ada", "team_id": "sales"})).status_code == 201


@pytest.mark.parametrize("pattern", [*NOT_RE2, "(unclosed", "", 42])
async def test_a_pattern_re2_cannot_run_is_refused_at_save_naming_its_field(env: Env, pattern: Any) -> None:
    async with running(env.settings(), wait_assigned=False) as svc:
        if (await svc.get("/v1/admin/teams/sales")).status_code == 404:
            await _team(svc)
        before = (await svc.get("/v1/admin/routing-rules/versions")).json()
        response = await svc.post("/v1/admin/routing-rules", json=_rules(pattern))
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["detail"] == "The routing rules are invalid; see errors."
        assert [(e["field"], e["code"]) for e in body["errors"]] == [("rules.0.conditions.1.value", "pattern")]
        assert (await svc.get("/v1/admin/routing-rules/versions")).json() == before


async def test_rules_saved_before_the_check_are_refused_at_dry_run_and_activation(env: Env) -> None:
    settings = env.settings()
    # As an older release stored them: the pattern was never checked.
    db = Database(settings.database_url)
    async with db.transaction() as session:
        await session.execute(insert(routing_ruleset).values(
            version=900, rules=_rules(NOT_RE2[0])["rules"], fallback_queue=None, comment="legacy", active=False))
    await db.dispose()
    async with running(settings, wait_assigned=False) as svc:
        if (await svc.get("/v1/admin/teams/sales")).status_code == 404:
            await _team(svc)
        lead = {"profile": {"country": "US", "job_title": "VP Sales"}}
        trial = await svc.post("/v1/admin/routing-rules/dry-run", json={"lead": lead, "version": 900})
        assert trial.status_code == 422, trial.text
        assert trial.json()["detail"] == "The routing rules (version 900) are invalid; see errors."
        assert trial.json()["errors"][0]["field"] == "rules.0.conditions.1.value"
        assert NOT_RE2[0] in trial.json()["errors"][0]["message"]

        activation = await svc.post("/v1/admin/routing-rules/versions/900/activate")
        assert activation.status_code == 422, activation.text
        assert [e["field"] for e in activation.json()["errors"]] == ["rules.0.conditions.1.value"]
        assert (await svc.get("/v1/admin/routing-rules")).json().get("version") != 900


async def test_a_catastrophic_pattern_routes_a_worst_case_lead_like_any_other(env: Env) -> None:
    settings = env.settings()
    async with (
        collecting(env.infra.bootstrap_servers, env.topic(topics.ROUTED)) as routed,
        running(settings) as svc,
    ):
        if (await svc.get("/v1/admin/teams/sales")).status_code == 404:
            await _team(svc)
        # (x+x+)+y against 2,000 x's: about 2**2000 steps for a backtracking engine, one pass for RE2.
        saved = await svc.post("/v1/admin/routing-rules", json={"rules": [
            {"id": "evil", "team_id": "sales", "conditions": [{"field": "company", "op": "matches",
                                                               "value": "(x+x+)+y"}]},
            {"id": "rest", "team_id": "sales"},
        ]})
        assert saved.status_code == 201, saved.text
        lead = scored(country="US")
        lead = lead.model_copy(update={"data": lead.data.model_copy(update={
            "profile": lead.data.profile.model_copy(update={"company": "x" * 2000})})})
        await produce(env.infra.bootstrap_servers, env.prefix, [lead])
        await routed.wait(lambda: bool(routed.of(lead.subject)), what="lead.routed")
        decision = routed.of(lead.subject)[0].data
        assert decision.rule_id == "rest" and decision.owner.rep_id == "ada"

        trial = await svc.post("/v1/admin/routing-rules/dry-run", json={"lead": {"company": "x" * 2000 + "y"}})
        assert trial.status_code == 200, trial.text
        assert trial.json()["rule_id"] == "evil"
