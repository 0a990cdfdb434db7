"""Scoring-model `matches` patterns over HTTP: one RE2 cannot run is a 422 naming its field when
validated, saved, dry-run or activated, and one that would backtrack for hours in Python's re scores a
worst-case lead like any other."""

from __future__ import annotations

from typing import Any

import pytest

from leadflow_kit.db import Database
from leadflow_scoring.model import ScoringModelSpec
from leadflow_scoring.store import ScoringStore

from .conftest import Harness, enriched, new_id
from .test_admin_models import default_document

pytestmark = pytest.mark.integration

# negative_rules[4] is 'student'; its second 'any' condition is a job_title pattern.
PATTERN_AT = "negative_rules[4].any[1].value"


def with_pattern(pattern: str, name: str) -> dict[str, Any]:
    document = default_document()
    document["name"] = name
    condition = document["negative_rules"][4]["any"][1]
    assert condition["op"] == "matches"
    condition["value"] = pattern
    return document


@pytest.mark.parametrize("pattern", [r"\b(intern)\s+\1", r"student(?!s)", r"(?<=phd )candidate", "a{1001}"])
async def test_a_pattern_re2_cannot_run_is_refused_naming_its_field(scoring: Harness, pattern: str) -> None:
    document = with_pattern(pattern, "b2b-saas-backref")
    report = (await scoring.post("/v1/admin/scoring-models/validate", json=document)).json()
    assert report["valid"] is False
    assert [(e["field"], e["code"]) for e in report["errors"]] == [(PATTERN_AT, "bad_regex")]
    assert report["errors"][0]["message"].startswith("rule 'student': ")

    before = (await scoring.get("/v1/admin/scoring-models")).json()
    saved = await scoring.post("/v1/admin/scoring-models", json=document)
    assert saved.status_code == 422, saved.text
    assert saved.json()["detail"] == "The scoring model is invalid; see errors."
    assert [e["field"] for e in saved.json()["errors"]] == [PATTERN_AT]
    assert (await scoring.get("/v1/admin/scoring-models")).json() == before

    trial = await scoring.post("/v1/admin/scoring-models/dry-run", json={"model": document, "last_n": 5})
    assert trial.status_code == 422, trial.text
    assert [e["field"] for e in trial.json()["errors"]] == [f"model.{PATTERN_AT}"]


async def test_a_version_saved_before_the_check_is_refused_at_dry_run_and_activation(scoring: Harness) -> None:
    # As an older release stored it: the structure was checked, the pattern only by Python's re.
    spec = ScoringModelSpec.model_validate(with_pattern(r"(intern)\s+\1", "b2b-saas-legacy"))
    db = Database(scoring.settings.database_url)
    async with db.transaction() as session:
        model_id = await ScoringStore().save_version(session, spec, source_text=None, created_by="an older release")
    await db.dispose()
    active = (await scoring.get("/v1/admin/scoring-models/active")).json()["id"]

    trial = await scoring.post(f"/v1/admin/scoring-models/{model_id}/dry-run", json={"last_n": 5})
    assert trial.status_code == 422, trial.text
    assert [(e["field"], e["code"]) for e in trial.json()["errors"]] == [(PATTERN_AT, "bad_regex")]

    activation = await scoring.post(f"/v1/admin/scoring-models/{model_id}/activate")
    assert activation.status_code == 422, activation.text
    assert [e["field"] for e in activation.json()["errors"]] == [PATTERN_AT]
    assert (await scoring.get("/v1/admin/scoring-models/active")).json()["id"] == active


async def test_a_catastrophic_pattern_scores_a_worst_case_lead_like_any_other(scoring: Harness) -> None:
    # (x+x+)+y against 2,000 x's: about 2**2000 steps for a backtracking engine, one pass for RE2.
    saved = await scoring.post("/v1/admin/scoring-models", json=with_pattern("(x+x+)+y", "b2b-saas-evil"))
    assert saved.status_code == 201, saved.text
    model_id = saved.json()["id"]
    assert (await scoring.post(f"/v1/admin/scoring-models/{model_id}/activate")).status_code == 200

    worst, student = new_id(), new_id()
    now = scoring.clock.now()
    await scoring.send(enriched(worst, at=now, job_title="x" * 2000),
                       enriched(student, at=now, job_title="x" * 2000 + "y"))
    [scored_worst] = await scoring.scored.wait_for_count(worst, 1)
    [scored_student] = await scoring.scored.wait_for_count(student, 1)
    assert scored_worst.data.model_version == scored_student.data.model_version == model_id
    assert "student" not in {line.rule_id for line in scored_worst.data.breakdown}
    assert "student" in {line.rule_id for line in scored_student.data.breakdown}
