"""The model lifecycle over HTTP: validate, save, dry-run, activate and roll back while leads keep flowing."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
import yaml

from leadflow_scoring.model import default_model_text

from .conftest import ADMIN, Harness, enriched, good_fit, later, new_id

pytestmark = pytest.mark.integration


def default_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(default_model_text())
    return copy.deepcopy(document)


def stricter_model() -> dict[str, Any]:
    """The default with a higher MQL bar and no fast track: a demo alone no longer qualifies."""
    document = default_document()
    document["name"] = "b2b-saas-strict"
    document["mql"]["threshold"] = 120
    document["mql"]["fast_track"] = []
    return document


async def key_with(scoring: Harness, *scopes: str) -> dict[str, str]:
    response = await scoring.client.post("/v1/admin/api-keys", json={"name": "t", "scopes": list(scopes)},
                                         headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


async def test_admin_routes_need_the_scoring_scopes(scoring: Harness) -> None:
    assert (await scoring.client.get("/v1/admin/scoring-models")).status_code == 401
    reader = await key_with(scoring, "scoring:read")
    assert (await scoring.client.get("/v1/admin/scoring-models", headers=reader)).status_code == 200
    response = await scoring.client.post("/v1/admin/scoring-models/validate", json=default_document(), headers=reader)
    assert response.status_code == 403
    leads_only = await key_with(scoring, "leads:read")
    assert (await scoring.client.get("/v1/admin/scoring-models", headers=leads_only)).status_code == 403
    assert (await scoring.client.get("/v1/leads/nobody/score", headers=leads_only)).status_code == 404
    assert (await scoring.client.get("/v1/leads/nobody/score", headers=reader)).status_code == 403


async def test_the_default_model_is_version_one_and_active(scoring: Harness) -> None:
    active = (await scoring.get("/v1/admin/scoring-models/active")).json()
    assert (active["id"], active["version"], active["active"]) == ("b2b-saas-default.v1", 1, True)
    schema = (await scoring.get("/v1/admin/scoring-models/schema")).json()
    assert schema["title"] == "LeadFlow scoring model"
    source = await scoring.get("/v1/admin/scoring-models/b2b-saas-default.v1/source")
    assert source.headers["content-type"].startswith("application/yaml")
    assert source.text == default_model_text()


async def test_validate_reports_errors_pointing_at_the_bad_rule(scoring: Harness) -> None:
    document = default_document()
    document["fit_rules"][4]["all"][0]["op"] = "between"
    document["fit_rules"][4]["all"][0]["value"] = 10
    document["behavior_rules"][2]["cap"] = -1
    report = (await scoring.post("/v1/admin/scoring-models/validate", json=document)).json()
    assert report["valid"] is False
    assert {(e["field"], e["code"]) for e in report["errors"]} == {
        ("behavior_rules[2].cap", "greater_than"),
    }
    document["behavior_rules"][2]["cap"] = 35
    report = (await scoring.post("/v1/admin/scoring-models/validate", json=document)).json()
    assert report["errors"] == [{
        "field": "fit_rules[4].all[0].value", "code": "range_expected",
        "message": "rule 'size_growth': 'between' needs [low, high] numbers",
    }]

    saved = await scoring.post("/v1/admin/scoring-models", json=document)
    assert saved.status_code == 422
    assert saved.json()["errors"][0]["field"] == "fit_rules[4].all[0].value"

    yaml_text = yaml.safe_dump(default_document())
    report = (await scoring.client.post("/v1/admin/scoring-models/validate", content=yaml_text,
                                        headers={**ADMIN, "content-type": "application/yaml"})).json()
    assert report["valid"] is True and report["rules"]["fit_rules"] == 20


async def test_dry_run_shows_what_a_draft_would_change(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    await scoring.send(enriched(lead_id, at=now, form_key="demo", quality=70, industry="Retail", employee_count=60,
                                seniority="manager", country="FR"))
    await scoring.scored.wait_for_count(lead_id, 1)

    given = {"model": stricter_model(), "leads": [
        {"lead_id": "given-1", "form_key": "demo", "profile": {"industry": "Retail", "employee_count": 60,
                                                               "seniority": "manager", "country": "FR",
                                                               "email_type": "corporate"}},
        {"lead_id": "given-2", "profile": {"industry": "SaaS"},
         "activities": [{"activity_type": "content_download", "occurred_at": now.isoformat()}]},
    ]}
    result = (await scoring.post("/v1/admin/scoring-models/dry-run", json=given)).json()
    assert result["current_model"] == "b2b-saas-default.v1" and result["draft_model"] == "b2b-saas-strict"
    first, second = result["leads"]
    assert first["current"]["is_mql"] is True and first["draft"]["is_mql"] is False
    assert first["changes"] == ["stops being an MQL", "tier hot -> warm"]
    assert first["score_change"] == 0
    assert {line["rule_id"] for line in first["draft"]["breakdown"]} >= {"demo_form", "industry_adjacent"}
    assert second["changes"] == []
    assert result["summary"] == {"leads": 2, "changed": 1, "mql_current": 1, "mql_draft": 0,
                                 "tiers_current": {"hot": 1, "cold": 1}, "tiers_draft": {"warm": 1, "cold": 1},
                                 "average_score_change": 0.0}

    recent = (await scoring.post("/v1/admin/scoring-models/dry-run",
                                 json={"model": yaml.safe_dump(stricter_model()), "last_n": 50})).json()
    by_id = {lead["lead_id"]: lead for lead in recent["leads"]}
    assert by_id[lead_id]["changes"] == ["stops being an MQL", "tier hot -> warm"]

    bad = stricter_model()
    bad["tiers"][0]["tier"] = "scorching"
    response = await scoring.post("/v1/admin/scoring-models/dry-run", json={"model": bad, "last_n": 5})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "model.tiers[0].tier"
    both = await scoring.post("/v1/admin/scoring-models/dry-run", json={"model": bad, "last_n": 5, "leads": []})
    assert both.status_code == 422


async def test_activation_and_rollback_while_leads_keep_flowing(scoring: Harness) -> None:
    saved = await scoring.post("/v1/admin/scoring-models", json=stricter_model())
    assert saved.status_code == 201, saved.text
    strict_id = saved.json()["id"]
    assert strict_id.startswith("b2b-saas-strict.v") and saved.json()["active"] is False
    dry = (await scoring.post(f"/v1/admin/scoring-models/{strict_id}/dry-run", json={"last_n": 10})).json()
    assert dry["draft_model"] == strict_id

    leads = [new_id("flow") for _ in range(30)]

    async def keep_sending() -> None:
        for lead_id in leads:
            await scoring.send(enriched(lead_id, at=scoring.clock.now(), form_key="demo", **good_fit()))
            await asyncio.sleep(0.03)

    sender = asyncio.create_task(keep_sending())
    await asyncio.sleep(0.3)
    activated = (await scoring.post(f"/v1/admin/scoring-models/{strict_id}/activate")).json()
    assert activated == {"active_model": strict_id, "previous_model": "b2b-saas-default.v1",
                         "activated_at": activated["activated_at"]}
    await asyncio.sleep(0.3)
    rolled = await scoring.post("/v1/admin/scoring-models/rollback")
    assert rolled.status_code == 200 and rolled.json()["active_model"] == "b2b-saas-default.v1"
    await sender

    versions_seen = []
    for lead_id in leads:
        [scored] = await scoring.scored.wait_for_count(lead_id, 1)
        versions_seen.append(scored.data.model_version)
        # A good fit asking for a demo (116 points) qualifies under the default, not under the strict bar of 120.
        assert scored.data.is_mql == (scored.data.model_version == "b2b-saas-default.v1")
    # The strict model scored the leads that arrived while it was active. Which leads those were depends
    # on how partitions interleave on a busy machine, so only the set is asserted, not the exact order.
    assert strict_id in versions_seen
    after_rollback = new_id("flow")
    await scoring.send(enriched(after_rollback, at=scoring.clock.now(), form_key="demo", **good_fit()))
    [last] = await scoring.scored.wait_for_count(after_rollback, 1)
    assert last.data.model_version == "b2b-saas-default.v1" and last.data.is_mql
    await asyncio.sleep(0.2)
    assert all(len(scoring.scored.scored(lead_id)) == 1 for lead_id in leads)

    models = (await scoring.get("/v1/admin/scoring-models")).json()
    assert [m["id"] for m in models][-1] == "b2b-saas-default.v1"
    assert strict_id in {m["id"] for m in models}
    assert [m["id"] for m in models if m["active"]] == ["b2b-saas-default.v1"]
    log = (await scoring.get("/v1/admin/scoring-models/activations")).json()
    assert log[0]["model_id"] == strict_id and log[0]["rolled_back_at"] is not None

    assert (await scoring.post("/v1/admin/scoring-models/rollback")).status_code == 409
    assert (await scoring.post("/v1/admin/scoring-models/nope.v9/activate")).status_code == 404


async def test_a_new_active_model_reaches_existing_leads_through_the_sweep(scoring: Harness) -> None:
    now = scoring.clock.now()
    lead_id = new_id()
    await scoring.send(enriched(lead_id, at=now, form_key="demo", quality=70, industry="Retail", employee_count=60,
                                seniority="manager", country="FR"))
    [first] = await scoring.scored.wait_for_count(lead_id, 1)
    assert first.data.is_mql

    strict = (await scoring.post("/v1/admin/scoring-models", json=stricter_model())).json()["id"]
    assert (await scoring.post(f"/v1/admin/scoring-models/{strict}/activate")).status_code == 200
    scoring.clock.advance(later(0.1))  # past the sweep's minimum age
    events = await scoring.scored.wait_for_count(lead_id, 2)
    changed = events[1].data
    assert (changed.trigger, changed.model_version) == ("model_change", strict)
    assert (changed.previous_stage, changed.lifecycle_stage, changed.is_mql) == ("mql", "recycled", False)

    metrics = (await scoring.client.get("/metrics")).text
    assert f'leadflow_scoring_model_version{{model="b2b-saas-strict",service="scoring"}} {strict.split(".v")[1]}.0' \
        in metrics
