"""A model is data: the schema is published, and a broken model is refused with errors naming the bad rule."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from leadflow_scoring.model import (
    InvalidModel,
    default_model,
    default_model_text,
    json_schema,
    parse_document,
    schema_text,
    validate_model,
)

REPO = Path(__file__).resolve().parents[4]
PUBLISHED_SCHEMA = REPO / "docs" / "scoring-model.schema.json"


def default_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(default_model_text())
    return copy.deepcopy(document)


def errors_of(document: Any) -> list[tuple[str, str, str]]:
    with pytest.raises(InvalidModel) as caught:
        validate_model(document)
    return [(e.field, e.code, e.message) for e in caught.value.errors]


def test_the_published_schema_matches_the_model_and_accepts_the_default() -> None:
    assert PUBLISHED_SCHEMA.read_text() == schema_text(), (
        "docs/scoring-model.schema.json is stale: run `uv run python -m leadflow_scoring.model`"
    )
    jsonschema.validate(default_document(), json_schema())


def test_the_default_model_is_valid_and_substantial() -> None:
    model = default_model()
    assert model.name == "b2b-saas-default"
    assert len(model.fit_rules) >= 15 and len(model.behavior_rules) >= 8 and len(model.negative_rules) >= 6
    assert model.decay.half_life_days == 30


def test_an_unknown_lead_field_names_the_rule_and_path() -> None:
    document = default_document()
    document["fit_rules"][2]["all"][0]["field"] = "headcount"
    [(path, code, message)] = errors_of(document)
    assert path == "fit_rules[2].all[0].field"
    assert code == "unknown_field"
    assert message == "rule 'size_enterprise': 'headcount' is not a lead field"


def test_operators_need_the_right_kind_of_value() -> None:
    document = default_document()
    document["fit_rules"][0]["all"][0]["value"] = "software"  # 'in' needs a list
    document["fit_rules"][3]["all"][0]["value"] = [999, 200]  # between low > high
    document["fit_rules"][2]["all"][0]["value"] = "many"  # gte needs a number
    document["negative_rules"][4]["any"][1]["value"] = "(unclosed"  # bad regex
    found = {(path, code) for path, code, _ in errors_of(document)}
    assert found == {
        ("fit_rules[0].all[0].value", "list_expected"),
        ("fit_rules[3].all[0].value", "range_order"),
        ("fit_rules[2].all[0].value", "number_expected"),
        ("negative_rules[4].any[1].value", "bad_regex"),
    }


def test_structural_errors_point_at_the_rule() -> None:
    document = default_document()
    document["behavior_rules"][1]["points"] = -5  # behavior points must be positive
    document["negative_rules"][0]["points"] = 10  # negative points must be negative
    document["fit_rules"][1]["op"] = "in"  # not a rule field
    errors = errors_of(document)
    by_path = {path: message for path, _, message in errors}
    assert by_path["behavior_rules[1].points"].startswith("rule 'demo_request': ")
    assert by_path["negative_rules[0].points"].startswith("rule 'disposable_email': ")
    assert "fit_rules[1].op" in by_path


def test_duplicate_ids_and_disordered_thresholds_are_refused() -> None:
    document = default_document()
    document["fit_rules"][1]["id"] = "industry_core"
    document["fit_grades"] = {"A": 30, "B": 35, "C": 15}
    document["tiers"].append({"tier": "warm"})
    found = {(path, code) for path, code, _ in errors_of(document)}
    assert found == {("fit_rules[1].id", "duplicate_id"), ("fit_grades", "order"), ("tiers[3]", "no_conditions")}


def test_a_fit_rule_without_conditions_and_activity_fields_in_lead_rules_are_refused() -> None:
    document = default_document()
    del document["fit_rules"][0]["all"]
    document["fit_rules"][1]["all"][0]["field"] = "page_url"
    found = {(path, code) for path, code, _ in errors_of(document)}
    assert found == {("fit_rules[0]", "no_conditions"), ("fit_rules[1].all[0].field", "unknown_field")}


def test_activity_rules_test_activity_fields_and_custom_fields_are_open() -> None:
    document = default_document()
    document["behavior_rules"][0]["all"][0]["field"] = "industry"
    document["fit_rules"].append({"id": "budget", "reason": "Has budget", "points": 5,
                                  "all": [{"field": "custom_fields.budget", "op": "exists"}]})
    [(path, code, _)] = errors_of(document)
    assert (path, code) == ("behavior_rules[0].all[0].field", "unknown_field")


def test_syntax_errors_and_missing_sections_are_reported() -> None:
    with pytest.raises(InvalidModel) as caught:
        parse_document("name: [unclosed")
    assert caught.value.errors[0].code == "syntax"
    found = {path for path, _, _ in errors_of({"name": "tiny"})}
    assert found == {"fit_grades", "engagement_levels", "mql"}


def test_an_activity_type_outside_the_vocabulary_is_refused_where_it_is_named() -> None:
    document = default_document()
    document["behavior_rules"][1]["activity_types"] = ["demo_request", "custom.contact_form"]
    document["mql"]["fast_track"][0]["activity_types"] = ["free_trial_signup"]
    found = {(path, code): message for path, code, message in errors_of(document)}
    assert set(found) == {("behavior_rules[1].activity_types[0]", "unknown_activity_type"),
                          ("mql.fast_track[0].activity_types[0]", "unknown_activity_type")}
    assert "use one of page_view" in found[("behavior_rules[1].activity_types[0]", "unknown_activity_type")]
