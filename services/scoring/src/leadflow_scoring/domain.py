"""Scoring as plain rules over plain data: no I/O, the time passed in.

A lead's score is the sum of its explanation lines:
* fit lines (fit rules and negative rules on lead fields) make the fit points -> grade A-D;
* behavior lines (capped, at face value), one decay line (what the half-life took away) and
  negative activity lines make the behavioral points -> engagement 1-4.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from leadflow_contracts import AccountMatch, Attribution, Consent, DataQuality, LeadContact, LeadProfile, ScoreLine
from leadflow_kit.patterns import pattern_found
from leadflow_scoring.model import (
    GRADES,
    BehaviorRule,
    Condition,
    FitGrade,
    NegativeRule,
    ScoringModelSpec,
    Tier,
    TierRule,
)

Stage = Literal["lead", "mql", "sal", "sql", "opportunity", "customer", "disqualified", "recycled"]
SECONDS_PER_DAY = 86400.0
FORM_SUBMISSION = "form_submission"

# Countries to regions, for 'region' rules (ISO 3166-1 alpha-2 as enrichment gives them).
_REGIONS = {
    "north_america": "US CA MX",
    "latam": "AR BO BR CL CO CR DO EC GT HN NI PA PE PR PY SV UY VE",
    "emea": "AE AT BE BG CH CY CZ DE DK EE EG ES FI FR GB GR HR HU IE IL IS IT KE LT LU LV MA MT NG NL NO "
            "PL PT RO RS SA SE SI SK TR UA ZA",
    "apac": "AU CN HK ID IN JP KR MY NZ PH PK SG TH TW VN",
}
REGION_OF = {country: region for region, codes in _REGIONS.items() for country in codes.split()}


@dataclass(frozen=True)
class Activity:
    activity_id: str
    activity_type: str
    occurred_at: datetime
    page_url: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"activity_type": self.activity_type, "page_url": self.page_url,
                               "form_key": self.properties.get("form_key")}
        out.update({f"properties.{k}": v for k, v in self.properties.items()})
        return out


@dataclass(frozen=True)
class ScoreResult:
    score: float
    fit_points: float
    behavior_points: float
    fit_grade: FitGrade
    engagement_level: int
    is_mql: bool
    tier: Tier
    lines: tuple[ScoreLine, ...]
    mql_reason: str | None = None
    mql_blocked_by: tuple[str, ...] = ()

    def summary(self) -> tuple[float, str, int, str, bool]:
        return (self.score, self.fit_grade, self.engagement_level, self.tier, self.is_mql)


class LeadFields(BaseModel):
    """What lead rules read about a lead: the parts of ``lead.enriched`` a form fill brings (a dry run's
    leads carry the same), as scoring keeps them with the lead's score."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    form_key: str | None = None
    partial: bool = False
    duplicate_of: str | None = None
    profile: LeadProfile = Field(default_factory=LeadProfile)
    account: AccountMatch | None = None
    quality: DataQuality | None = None
    attribution: Attribution = Field(default_factory=Attribution)
    custom_fields: dict[str, str] = Field(default_factory=dict)
    # Not read by rules: passed along in lead.scored so routing can hand the CRM the whole record.
    consent: Consent | None = None
    original: LeadContact = Field(default_factory=LeadContact)

    @classmethod
    def of(cls, lead: BaseModel) -> LeadFields:
        """The fields of a ``LeadEnriched`` (or a dry run's lead)."""
        return cls.model_validate(lead, from_attributes=True)


def email_key(email: str | None) -> str | None:
    """An email as identities and locks key it."""
    return email.strip().lower() if email and email.strip() else None


def lead_facts(lead: LeadFields) -> dict[str, Any]:
    """The flat field map lead rules test."""
    profile = lead.profile.model_dump(mode="json")
    facts: dict[str, Any] = {}
    for name, value in profile.items():
        facts[name] = value
        facts[f"profile.{name}"] = value
    country = (lead.profile.country or "").upper()
    facts["region"] = REGION_OF.get(country)
    facts["form_key"] = lead.form_key
    facts["partial"] = lead.partial
    facts["duplicate"] = lead.duplicate_of is not None
    facts["data_quality"] = facts["quality.score"] = lead.quality.score if lead.quality else None
    account = lead.account.model_dump(mode="json") if lead.account else None
    facts["account"] = lead.account.account_id if lead.account else None
    for name, value in (account or {}).items():
        facts[f"account.{name}"] = value
    for name, value in lead.attribution.model_dump(mode="json").items():
        facts[f"attribution.{name}"] = value
        if name.startswith("utm_"):
            facts[name] = value
    for name, value in lead.custom_fields.items():
        facts[f"custom_fields.{name}"] = value
    return facts


# -- conditions ------------------------------------------------------------------------------


def _fold(value: Any) -> Any:
    return value.strip().casefold() if isinstance(value, str) else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).replace(",", ""))
    except ValueError:
        return None


def condition_holds(cond: Condition, facts: Mapping[str, Any]) -> bool:
    actual = facts.get(cond.field)
    present = actual is not None and actual != "" and actual is not False
    op = cond.op
    if op == "exists":
        return present
    if op == "missing":
        return not present
    if actual is None:
        # Absent values satisfy only the negative tests.
        return op in ("ne", "not_in")
    if op in ("eq", "ne"):
        same = _fold(actual) == _fold(cond.value) or (
            _number(actual) is not None and _number(actual) == _number(cond.value)
        )
        return same if op == "eq" else not same
    if op in ("in", "not_in"):
        inside = _fold(actual) in {_fold(v) for v in cond.value}
        return inside if op == "in" else not inside
    if op in ("gt", "gte", "lt", "lte", "between"):
        number = _number(actual)
        if number is None:
            return False
        if op == "between":
            return float(cond.value[0]) <= number <= float(cond.value[1])
        limit = float(cond.value)
        return {"gt": number > limit, "gte": number >= limit, "lt": number < limit, "lte": number <= limit}[op]
    text = str(actual).casefold()
    if op == "contains":
        return str(cond.value).casefold() in text
    if op == "starts_with":
        return text.startswith(str(cond.value).casefold())
    if op == "ends_with":
        return text.endswith(str(cond.value).casefold())
    return pattern_found(str(cond.value), str(actual))


def rule_matches(all_: Sequence[Condition], any_: Sequence[Condition], facts: Mapping[str, Any]) -> bool:
    return all(condition_holds(c, facts) for c in all_) and (
        not any_ or any(condition_holds(c, facts) for c in any_)
    )


def _reason(template: str, conditions: Sequence[Condition], facts: Mapping[str, Any]) -> str:
    if "{value}" not in template:
        return template
    value = facts.get(conditions[0].field) if conditions else None
    return template.replace("{value}", "unknown" if value is None else str(value))


# -- scoring ---------------------------------------------------------------------------------


def _round(points: float) -> float:
    return round(points + 0.0, 1) + 0.0  # "+ 0.0" turns -0.0 into 0.0


def _age_days(at: datetime, now: datetime) -> float:
    return max((now - at).total_seconds() / SECONDS_PER_DAY, 0.0)


def _matching(
    rule: BehaviorRule | NegativeRule, types: Iterable[str], activities: Sequence[Activity], now: datetime
) -> list[Activity]:
    wanted = {t.casefold() for t in types}
    return [
        a
        for a in activities
        if a.activity_type.casefold() in wanted
        and a.occurred_at <= now
        and (rule.window_days is None or _age_days(a.occurred_at, now) <= rule.window_days)
        and rule_matches(rule.all, rule.any, a.facts())
    ]


def _counted(activities: Sequence[Activity]) -> str:
    counts: dict[str, int] = {}
    for a in activities:
        counts[a.activity_type] = counts.get(a.activity_type, 0) + 1
    return ", ".join(f"{n} x {t}" for t, n in counts.items())


def grade_of(fit_points: float, spec: ScoringModelSpec) -> FitGrade:
    g = spec.fit_grades
    if fit_points >= g.A:
        return "A"
    if fit_points >= g.B:
        return "B"
    return "C" if fit_points >= g.C else "D"


def engagement_of(behavior_points: float, spec: ScoringModelSpec) -> int:
    e = spec.engagement_levels
    if behavior_points >= e.level_4:
        return 4
    if behavior_points >= e.level_3:
        return 3
    return 2 if behavior_points >= e.level_2 else 1


def grade_at_least(grade: FitGrade, minimum: FitGrade) -> bool:
    return GRADES.index(grade) <= GRADES.index(minimum)


def _tier_matches(rule: TierRule, score: float, grade: FitGrade, engagement: int, is_mql: bool) -> bool:
    return (
        (rule.is_mql is None or rule.is_mql == is_mql)
        and (rule.min_score is None or score >= rule.min_score)
        and (rule.min_fit_grade is None or grade_at_least(grade, rule.min_fit_grade))
        and (rule.min_engagement is None or engagement >= rule.min_engagement)
    )


@dataclass
class _Lines:
    """A score's explanation as it is built: fit lines, behavior lines, and the rules blocking an MQL."""

    fit: list[ScoreLine] = field(default_factory=list)
    behavior: list[ScoreLine] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)


def score_lead(
    spec: ScoringModelSpec, facts: Mapping[str, Any], activities: Sequence[Activity], now: datetime
) -> ScoreResult:
    lines = _Lines()
    for fit in spec.fit_rules:
        if rule_matches(fit.all, fit.any, facts):
            lines.fit.append(ScoreLine(rule_id=fit.id, category="fit", points=_round(fit.points),
                                       reason=_reason(fit.reason, [*fit.all, *fit.any], facts)))
    half_life = spec.decay.half_life_days
    decayed_away = 0.0
    for behavior in spec.behavior_rules:
        decayed_away += _add_behavior(behavior, activities, now, half_life, lines)
    for negative in spec.negative_rules:
        _add_negative(negative, facts, activities, now, lines)

    decay_points = _round(decayed_away)
    if decay_points != 0 and half_life:
        lines.behavior.append(ScoreLine(rule_id="decay", category="decay", points=decay_points,
                                        reason=f"behavioral points fade with a {half_life:g}-day half-life"))

    fit_points = _round(sum(line.points for line in lines.fit))
    behavior_points = _round(sum(line.points for line in lines.behavior))
    score = _round(fit_points + behavior_points)
    grade = grade_of(fit_points, spec)
    engagement = engagement_of(behavior_points, spec)
    is_mql, mql_reason = _mql(spec, score, grade, activities, now, lines.blocked_by)
    tier: Tier = next(
        (t.tier for t in spec.tiers if _tier_matches(t, score, grade, engagement, is_mql)), "cold"
    )
    return ScoreResult(
        score=score, fit_points=fit_points, behavior_points=behavior_points, fit_grade=grade,
        engagement_level=engagement, is_mql=is_mql, tier=tier, lines=(*lines.fit, *lines.behavior),
        mql_reason=mql_reason, mql_blocked_by=tuple(lines.blocked_by),
    )


def _add_behavior(
    behavior: BehaviorRule, activities: Sequence[Activity], now: datetime, half_life: float | None, lines: _Lines
) -> float:
    """Add a behavior rule's line (at face value, capped); returns what decay took from it (<= 0)."""
    matched = _matching(behavior, behavior.activity_types, activities, now)
    if not matched:
        return 0.0
    face = behavior.points * len(matched)
    kept = sum(
        behavior.points * (0.5 ** (_age_days(a.occurred_at, now) / half_life)
                           if behavior.decays and half_life else 1.0)
        for a in matched
    )
    reason = f"{behavior.reason} ({_counted(matched)})"
    if behavior.cap is not None and face > behavior.cap:
        reason += f", capped at {behavior.cap:g}"
        face = behavior.cap
    kept = min(kept, face)
    lines.behavior.append(ScoreLine(rule_id=behavior.id, category="behavior", points=_round(face), reason=reason))
    return kept - _round(face)


def _add_negative(
    negative: NegativeRule, facts: Mapping[str, Any], activities: Sequence[Activity], now: datetime, lines: _Lines
) -> None:
    """A negative rule on lead fields takes fit points; one on activities takes behavioral points."""
    if negative.activity_types is None:
        if rule_matches(negative.all, negative.any, facts):
            lines.fit.append(ScoreLine(rule_id=negative.id, category="negative", points=_round(negative.points),
                                       reason=_reason(negative.reason, [*negative.all, *negative.any], facts)))
            if negative.blocks_mql:
                lines.blocked_by.append(negative.id)
        return
    matched = _matching(negative, negative.activity_types, activities, now)
    if not matched:
        return
    taken = negative.points * len(matched)
    reason = f"{negative.reason} ({_counted(matched)})"
    if negative.cap is not None and -taken > negative.cap:
        taken = -negative.cap
        reason += f", capped at -{negative.cap:g}"
    lines.behavior.append(ScoreLine(rule_id=negative.id, category="negative", points=_round(taken), reason=reason))
    if negative.blocks_mql:
        lines.blocked_by.append(negative.id)


def _mql(
    spec: ScoringModelSpec, score: float, grade: FitGrade, activities: Sequence[Activity], now: datetime,
    blocked_by: Sequence[str],
) -> tuple[bool, str | None]:
    if blocked_by:
        return False, f"blocked by {', '.join(blocked_by)}"
    rule = spec.mql
    if score >= rule.threshold and (rule.min_fit_grade is None or grade_at_least(grade, rule.min_fit_grade)):
        return True, f"score {score:g} ≥ {rule.threshold:g}"
    for fast in rule.fast_track:
        wanted = {t.casefold() for t in fast.activity_types}
        recent = any(
            a.activity_type.casefold() in wanted and a.occurred_at <= now
            and _age_days(a.occurred_at, now) <= fast.within_days
            and rule_matches(fast.all, fast.any, a.facts())
            for a in activities
        )
        if recent and grade_at_least(grade, fast.min_fit_grade):
            return True, fast.reason
    return False, None


# -- lifecycle -------------------------------------------------------------------------------

# Scoring moves leads between lead, mql and recycled; sales (through CRM callbacks) does the rest.
SCORING_STAGES: frozenset[str] = frozenset({"lead", "mql", "recycled"})
TOUCH_STAGE: dict[str, Stage] = {
    "accepted": "sal",
    "contacted": "sal",  # a lead sales has contacted was, in effect, accepted
    "meeting_booked": "sql",
    "opportunity_created": "opportunity",
    "converted": "customer",
    "disqualified": "disqualified",
}
STAGE_RANK: dict[str, int] = {
    "lead": 0, "recycled": 0, "mql": 1, "sal": 2, "sql": 3, "opportunity": 4, "customer": 5,
}


def stage_after_scoring(current: Stage, is_mql: bool) -> Stage:
    """Scoring's own transitions: qualify, and recycle an MQL whose interest faded before sales took it."""
    if current in ("lead", "recycled") and is_mql:
        return "mql"
    if current == "mql" and not is_mql:
        return "recycled"
    return current


def stage_after_touch(current: Stage, touch_type: str) -> Stage:
    """Sales' transitions; they only move forward (a late 'accepted' never undoes an SQL)."""
    target = TOUCH_STAGE.get(touch_type)
    if target is None or current == "customer":
        return current
    if target == "disqualified" or current == "disqualified":
        # Sales may disqualify at any stage short of customer, and re-engage a disqualified lead.
        return target
    return target if STAGE_RANK[target] > STAGE_RANK[current] else current


# When a re-score publishes lead.scored: always (a form fill, an activity), on any change of grade,
# engagement, tier, MQL, stage or model (the sweep), or only on a stage change (a sales touch).
Publish = Literal["always", "on_change", "on_stage"]


def next_stage(current: Stage, is_mql: bool, override: Stage | None = None) -> Stage:
    """The stage after a re-score: the one sales set (``override``), or scoring's own transition while
    the lead is still scoring's."""
    if override is not None:
        return override
    if current in SCORING_STAGES:
        return stage_after_scoring(current, is_mql)
    return current


def worth_publishing(
    when: Publish, *, new_lead: bool, stage_changed: bool, model_changed: bool, classification_changed: bool
) -> bool:
    if when == "always":
        return True
    if when == "on_stage":
        return stage_changed
    return new_lead or stage_changed or model_changed or classification_changed


def differences(before: ScoreResult, after: ScoreResult) -> list[str]:
    """What a model change would change for one lead, in words (for dry runs)."""
    out = []
    if before.is_mql != after.is_mql:
        out.append("becomes an MQL" if after.is_mql else "stops being an MQL")
    for label, old, new in (
        ("tier", before.tier, after.tier),
        ("fit grade", before.fit_grade, after.fit_grade),
        ("engagement", before.engagement_level, after.engagement_level),
    ):
        if old != new:
            out.append(f"{label} {old} -> {new}")
    if before.score != after.score:
        out.append(f"score {before.score:g} -> {after.score:g}")
    return out
