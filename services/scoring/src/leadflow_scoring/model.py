"""The scoring model as data: its schema, its validation, and the shipped default.

A model is a YAML or JSON document (see ``docs/scoring-model.schema.json``). Structure is checked
by the pydantic models below; meaning (unknown fields, operators given the wrong kind of value,
duplicate rule ids, thresholds out of order) by :func:`validate_model`, which names the bad rule.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadflow_contracts import LeadProfile
from leadflow_contracts.activities import is_known_activity_type, unknown_activity_type_message
from leadflow_kit.bodies import MAX_JSON_DEPTH
from leadflow_kit.errors import FieldError
from leadflow_kit.patterns import pattern_error

FitGrade = Literal["A", "B", "C", "D"]
Tier = Literal["hot", "warm", "cold"]
Operator = Literal[
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between",
    "exists", "missing", "contains", "starts_with", "ends_with", "matches",
]

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
GRADES: tuple[FitGrade, ...] = ("A", "B", "C", "D")

# Fields of a lead.enriched event a lead rule may test, by the name rules use.
PROFILE_FIELDS = frozenset(LeadProfile.model_fields)
LEAD_FIELDS = frozenset(
    {
        *PROFILE_FIELDS,
        *(f"profile.{name}" for name in LeadProfile.model_fields),
        "region", "form_key", "partial", "duplicate", "data_quality", "quality.score",
        "account", "account.account_id", "account.name", "account.domain", "account.method",
        "account.confidence", "account.tier", "account.owner_rep_id",
        "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
        "attribution.utm_source", "attribution.utm_medium", "attribution.utm_campaign",
        "attribution.utm_term", "attribution.utm_content", "attribution.referrer",
        "attribution.landing_page", "attribution.gclid", "attribution.fbclid",
    }
)
ACTIVITY_FIELDS = frozenset({"activity_type", "page_url", "form_key"})
OPEN_PREFIXES_LEAD = ("custom_fields.",)
OPEN_PREFIXES_ACTIVITY = ("properties.",)

NUMERIC_OPS = frozenset({"gt", "gte", "lt", "lte"})
STRING_OPS = frozenset({"contains", "starts_with", "ends_with", "matches"})
LIST_OPS = frozenset({"in", "not_in"})
PRESENCE_OPS = frozenset({"exists", "missing"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """One test on a field; text comparisons ignore case."""

    field: str = Field(description="A lead field (industry, employee_count, account.tier, custom_fields.x, ...) "
                                    "or, in activity rules, an activity field (activity_type, page_url, properties.x)")
    op: Operator
    value: Any = Field(default=None, description="A list for in/not_in, [low, high] for between (both inclusive), "
                                                 "a number for gt/gte/lt/lte, nothing for exists/missing")


class _Rule(_Strict):
    id: str = Field(pattern=RULE_ID_PATTERN, description="Stable id, shown in every explanation")
    reason: str = Field(min_length=1, max_length=200,
                        description="Human-readable reason; '{value}' is replaced by the lead's value of the "
                                    "first condition's field")
    all: list[Condition] = Field(default_factory=list, description="Every condition must hold")
    any: list[Condition] = Field(default_factory=list, description="At least one condition must hold")


class FitRule(_Rule):
    points: float = Field(description="Points when the rule matches the lead")


class BehaviorRule(_Rule):
    activity_types: list[str] = Field(min_length=1, description="Activity types this rule counts: the "
                                      "vocabulary of leadflow_contracts.activities, or custom.<name>")
    points: float = Field(gt=0, description="Points per matching activity")
    cap: float | None = Field(default=None, gt=0, description="Most points this rule can give")
    window_days: float | None = Field(default=None, gt=0, description="Only activities this recent count")
    decays: bool = Field(default=True, description="Whether the model's half-life decay applies")


class NegativeRule(_Rule):
    """Points taken away: on lead fields (``all``/``any``) or, with ``activity_types``, per activity."""

    points: float = Field(lt=0)
    activity_types: list[str] | None = Field(default=None, description="Count these activities instead of "
                                                                       "testing the lead; all/any then test "
                                                                       "the activity")
    cap: float | None = Field(default=None, gt=0, description="Most points (in magnitude) this rule can take")
    window_days: float | None = Field(default=None, gt=0)
    blocks_mql: bool = Field(default=False, description="A lead this rule matches never becomes an MQL")


class Decay(_Strict):
    half_life_days: float | None = Field(default=30, gt=0,
                                         description="Behavioral points halve every this many days; null: no decay")


class FitGrades(_Strict):
    """Minimum fit points (fit rules plus negative lead rules) for each grade; below C is D."""

    A: float
    B: float
    C: float


class EngagementLevels(_Strict):
    """Minimum behavioral points (after decay) for each level; below level_2 is 1."""

    level_4: float
    level_3: float
    level_2: float


class FastTrack(_Rule):
    """A hand-raise: a recent activity of these types (matching all/any on the activity) and a good fit."""

    activity_types: list[str] = Field(min_length=1)
    within_days: float = Field(gt=0)
    min_fit_grade: FitGrade = "B"


class MqlRule(_Strict):
    threshold: float = Field(description="Total score at which a lead becomes an MQL")
    min_fit_grade: FitGrade | None = Field(default=None, description="Grade the threshold route also needs")
    fast_track: list[FastTrack] = Field(default_factory=list,
                                        description="Also an MQL: a recent activity of these types with a good fit")


class TierRule(_Strict):
    tier: Tier
    is_mql: bool | None = None
    min_score: float | None = None
    min_fit_grade: FitGrade | None = None
    min_engagement: int | None = Field(default=None, ge=1, le=4)


class ScoringModelSpec(_Strict):
    """A complete lead-scoring model. The first matching tier rule wins; no match is 'cold'."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"$id": "https://leadflow.dev/schemas/scoring-model.json"},
    )

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str = ""
    fit_rules: list[FitRule] = Field(default_factory=list)
    behavior_rules: list[BehaviorRule] = Field(default_factory=list)
    negative_rules: list[NegativeRule] = Field(default_factory=list)
    decay: Decay = Field(default_factory=Decay)
    fit_grades: FitGrades
    engagement_levels: EngagementLevels
    mql: MqlRule
    tiers: list[TierRule] = Field(default_factory=list)


class InvalidModel(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def json_schema() -> dict[str, Any]:
    schema = ScoringModelSpec.model_json_schema()
    schema["title"] = "LeadFlow scoring model"
    return schema


class _Refused(yaml.YAMLError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _BoundedLoader(yaml.SafeLoader):
    """YAML without aliases (a few lines of anchors and aliases expand to billions of nodes once
    walked) and nested at most ``MAX_JSON_DEPTH`` levels, like a JSON body."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise _Refused("alias_not_allowed", "YAML aliases (*name) are not accepted; write the value out")
        self.depth += 1
        try:
            if self.depth > MAX_JSON_DEPTH:
                raise _Refused("too_deep", f"the document nests deeper than {MAX_JSON_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def parse_document(text: str | bytes) -> Any:
    """YAML (a superset of JSON) text to data; a syntax error, an alias or deep nesting is a model error."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader: no Python objects
    except _Refused as exc:
        raise InvalidModel([FieldError(field="body", code=exc.code, message=exc.message)]) from None
    except yaml.YAMLError as exc:
        raise InvalidModel([FieldError(field="body", code="syntax", message=f"not valid YAML/JSON: {exc}")]) from None


def validate_model(document: Any) -> ScoringModelSpec:
    """A checked model, or :class:`InvalidModel` listing every problem with its path and rule id."""
    try:
        spec = ScoringModelSpec.model_validate(document)
    except ValidationError as exc:
        raise InvalidModel([_structural_error(document, e) for e in exc.errors()]) from None
    errors = semantic_errors(spec)
    if errors:
        raise InvalidModel(errors)
    return spec


def _path(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _rule_id_at(document: Any, loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and isinstance(document, dict) and isinstance(loc[1], int):
        rules = document.get(str(loc[0]))
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rule_id = rules[loc[1]].get("id")
            return str(rule_id) if rule_id is not None else None
    return None


def _structural_error(document: Any, error: Any) -> FieldError:
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg"))
    rule_id = _rule_id_at(document, loc)
    if rule_id:
        message = f"rule '{rule_id}': {message}"
    return FieldError(field=_path(loc), code=str(error.get("type", "invalid")), message=message)


def _known_field(name: str, fields: frozenset[str], open_prefixes: tuple[str, ...]) -> bool:
    return name in fields or any(name.startswith(p) and len(name) > len(p) for p in open_prefixes)


def _condition_errors(cond: Condition, where: str, rule_id: str, on_activity: bool) -> list[FieldError]:
    errors: list[FieldError] = []

    def bad(part: str, code: str, message: str) -> None:
        errors.append(FieldError(field=f"{where}.{part}", code=code, message=f"rule '{rule_id}': {message}"))

    fields, prefixes = (
        (ACTIVITY_FIELDS, OPEN_PREFIXES_ACTIVITY) if on_activity else (LEAD_FIELDS, OPEN_PREFIXES_LEAD)
    )
    if not _known_field(cond.field, fields, prefixes):
        kind = "activity" if on_activity else "lead"
        bad("field", "unknown_field", f"'{cond.field}' is not a {kind} field")
    value = cond.value
    if cond.op in LIST_OPS:
        if not isinstance(value, list) or not value:
            bad("value", "list_expected", f"'{cond.op}' needs a non-empty list")
    elif cond.op == "between":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            bad("value", "range_expected", "'between' needs [low, high] numbers")
        elif value[0] > value[1]:
            bad("value", "range_order", f"'between' low {value[0]} is above high {value[1]}")
    elif cond.op in NUMERIC_OPS:
        if not isinstance(value, int | float) or isinstance(value, bool):
            bad("value", "number_expected", f"'{cond.op}' needs a number")
    elif cond.op in STRING_OPS:
        if not isinstance(value, str) or not value:
            bad("value", "string_expected", f"'{cond.op}' needs a non-empty string")
        elif cond.op == "matches" and (reason := pattern_error(value)) is not None:
            bad("value", "bad_regex", f"'{value}' is not a pattern RE2 can run: {reason}")
    elif cond.op in PRESENCE_OPS:
        if value is not None:
            bad("value", "no_value_expected", f"'{cond.op}' takes no value")
    elif isinstance(value, list | dict) or value is None:
        bad("value", "scalar_expected", f"'{cond.op}' needs a single value")
    return errors


def semantic_errors(spec: ScoringModelSpec) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: dict[str, str] = {}

    def check_rule(rule: _Rule, where: str, on_activity: bool, need_conditions: bool) -> None:
        if rule.id in seen:
            errors.append(FieldError(field=f"{where}.id", code="duplicate_id",
                                     message=f"rule id '{rule.id}' is already used at {seen[rule.id]}"))
        else:
            seen[rule.id] = where
        if need_conditions and not rule.all and not rule.any:
            errors.append(FieldError(field=where, code="no_conditions",
                                     message=f"rule '{rule.id}': give 'all' or 'any' conditions"))
        for group in ("all", "any"):
            for i, cond in enumerate(getattr(rule, group)):
                errors.extend(_condition_errors(cond, f"{where}.{group}[{i}]", rule.id, on_activity))

    def check_types(types: list[str] | None, where: str) -> None:
        for j, name in enumerate(types or ()):
            if not is_known_activity_type(name):
                errors.append(FieldError(field=f"{where}.activity_types[{j}]", code="unknown_activity_type",
                                         message=unknown_activity_type_message(name)))

    for i, fit in enumerate(spec.fit_rules):
        check_rule(fit, f"fit_rules[{i}]", on_activity=False, need_conditions=True)
    for i, behavior in enumerate(spec.behavior_rules):
        check_rule(behavior, f"behavior_rules[{i}]", on_activity=True, need_conditions=False)
        check_types(behavior.activity_types, f"behavior_rules[{i}]")
    for i, negative in enumerate(spec.negative_rules):
        on_activity = negative.activity_types is not None
        check_rule(negative, f"negative_rules[{i}]", on_activity=on_activity, need_conditions=not on_activity)
        check_types(negative.activity_types, f"negative_rules[{i}]")
        if not on_activity and (negative.cap is not None or negative.window_days is not None):
            errors.append(FieldError(field=f"negative_rules[{i}]", code="activity_only",
                                     message=f"rule '{negative.id}': cap and window_days need activity_types"))
    for i, fast in enumerate(spec.mql.fast_track):
        check_rule(fast, f"mql.fast_track[{i}]", on_activity=True, need_conditions=False)
        check_types(fast.activity_types, f"mql.fast_track[{i}]")
    grades = spec.fit_grades
    if not grades.A > grades.B > grades.C:
        errors.append(FieldError(field="fit_grades", code="order",
                                 message=f"grade thresholds must fall A > B > C, got "
                                         f"{grades.A}, {grades.B}, {grades.C}"))
    levels = spec.engagement_levels
    if not levels.level_4 > levels.level_3 > levels.level_2:
        errors.append(FieldError(field="engagement_levels", code="order",
                                 message="engagement thresholds must fall level_4 > level_3 > level_2"))
    for i, tier in enumerate(spec.tiers):
        criteria = (tier.is_mql, tier.min_score, tier.min_fit_grade, tier.min_engagement)
        if all(c is None for c in criteria):
            errors.append(FieldError(field=f"tiers[{i}]", code="no_conditions",
                                     message=f"tier rule {i} ('{tier.tier}') has no criteria; "
                                             "leads that match nothing are already 'cold'"))
    return errors


def default_model_text() -> str:
    return resources.files("leadflow_scoring").joinpath("default_model.yaml").read_text()


def default_model() -> ScoringModelSpec:
    return validate_model(parse_document(default_model_text()))


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/scoring-model.schema.json")
    target.write_text(schema_text())
    sys.stdout.write(f"{target}\n")
