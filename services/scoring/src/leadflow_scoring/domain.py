"""Scoring as plain rules over plain data: no I/O, the time passed in.

A lead's score is the sum of its explanation lines:
* fit lines (fit rules and negative rules on lead fields) make the fit points -> grade A-D;
* behavior lines (capped, at face value), one decay line (what the half-life took away) and
  negative activity lines make the behavioral points -> engagement 1-4.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from leadflow_contracts import AccountMatch, Attribution, Consent, DataQuality, LeadContact, LeadProfile, ScoreLine
from leadflow_kit.patterns import pattern_found
from leadflow_scoring.model import (
    GRADES,
    BehaviorRule,
    Condition,
    FastTrack,
    FitGrade,
    FitRule,
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


# The fact names of the contracts' fields, named once rather than for every lead.
_PROFILE_FACTS = {name: f"profile.{name}" for name in LeadProfile.model_fields}
_ACCOUNT_FACTS = {name: f"account.{name}" for name in AccountMatch.model_fields}
_ATTRIBUTION_FACTS = {name: f"attribution.{name}" for name in Attribution.model_fields}
_UTM_FIELDS = frozenset(name for name in Attribution.model_fields if name.startswith("utm_"))


def lead_facts(lead: LeadFields) -> dict[str, Any]:
    """The flat field map lead rules test."""
    profile = lead.profile.model_dump(mode="json")
    facts: dict[str, Any] = {}
    for name, value in profile.items():
        facts[name] = value
        facts[_PROFILE_FACTS[name]] = value
    country = (lead.profile.country or "").upper()
    facts["region"] = REGION_OF.get(country)
    facts["form_key"] = lead.form_key
    facts["partial"] = lead.partial
    facts["duplicate"] = lead.duplicate_of is not None
    facts["data_quality"] = facts["quality.score"] = lead.quality.score if lead.quality else None
    account = lead.account.model_dump(mode="json") if lead.account else None
    facts["account"] = lead.account.account_id if lead.account else None
    for name, value in (account or {}).items():
        facts[_ACCOUNT_FACTS[name]] = value
    for name, value in lead.attribution.model_dump(mode="json").items():
        facts[_ATTRIBUTION_FACTS[name]] = value
        if name in _UTM_FIELDS:
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


FactTest = Callable[[Mapping[str, Any]], bool]
"""A condition, or a rule's conditions, compiled: whether they hold for these facts."""

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}


def compile_condition(cond: Condition) -> FactTest:
    """``condition_holds(cond, facts)`` as a test of the facts alone: what depends only on the condition (the folded
    value and its number, the folded set, the casefolded text, the limits) is worked out here, once, instead of
    for every lead."""
    try:
        return _compiled_condition(cond)
    except Exception:
        # A value validation refuses (a rule stored before a check, a spec built in code) cannot be worked out
        # ahead; condition_holds then fails, or not, lead by lead, exactly as it always did.
        return partial(condition_holds, cond)


def _compiled_condition(cond: Condition) -> FactTest:
    name, op, value = cond.field, cond.op, cond.value
    if op == "exists":
        def present(facts: Mapping[str, Any]) -> bool:
            actual = facts.get(name)
            return actual is not None and actual != "" and actual is not False
        return present
    if op == "missing":
        def absent(facts: Mapping[str, Any]) -> bool:
            actual = facts.get(name)
            return not (actual is not None and actual != "" and actual is not False)
        return absent
    # Below, an absent value satisfies only the negative tests (ne, not_in), as in condition_holds.
    if op in ("eq", "ne"):
        folded, number, negated = _fold(value), _number(value), op == "ne"

        def equal(facts: Mapping[str, Any]) -> bool:
            actual = facts.get(name)
            if actual is None:
                return negated
            if isinstance(actual, str):
                # A text's number is a float or None, and working it out never fails: when the value has no
                # number the numbers cannot be equal, and the text's need not be worked out.
                same = actual.strip().casefold() == folded or (number is not None and _number(actual) == number)
            else:
                same = actual == folded or ((actual_number := _number(actual)) is not None and actual_number == number)
            return not same if negated else same
        return equal
    if op in ("in", "not_in"):
        members = frozenset({_fold(v) for v in value})
        negated = op == "not_in"

        def member(facts: Mapping[str, Any]) -> bool:
            actual = facts.get(name)
            if actual is None:
                return negated
            inside = (actual.strip().casefold() if isinstance(actual, str) else actual) in members
            return not inside if negated else inside
        return member
    if op == "between":
        low, high = float(value[0]), float(value[1])

        def within(facts: Mapping[str, Any]) -> bool:
            actual = facts.get(name)
            if actual is None:
                return False
            number = _number(actual)
            return number is not None and low <= number <= high
        return within
    if op in _COMPARISONS:
        compare, limit = _COMPARISONS[op], float(value)

        def compared(facts: Mapping[str, Any]) -> bool:
            actual = facts.get(name)
            if actual is None:
                return False
            number = _number(actual)
            return number is not None and compare(number, limit)
        return compared
    if op in ("contains", "starts_with", "ends_with"):
        needle = str(value).casefold()
        if op == "contains":
            def contains(facts: Mapping[str, Any]) -> bool:
                actual = facts.get(name)
                return actual is not None and needle in str(actual).casefold()
            return contains
        if op == "starts_with":
            def starts_with(facts: Mapping[str, Any]) -> bool:
                actual = facts.get(name)
                return actual is not None and str(actual).casefold().startswith(needle)
            return starts_with

        def ends_with(facts: Mapping[str, Any]) -> bool:
            actual = facts.get(name)
            return actual is not None and str(actual).casefold().endswith(needle)
        return ends_with
    pattern = str(value)  # "matches", and whatever else condition_holds reads as a pattern

    def found(facts: Mapping[str, Any]) -> bool:
        actual = facts.get(name)
        return actual is not None and pattern_found(pattern, str(actual))
    return found


def compile_rule(all_: Sequence[Condition], any_: Sequence[Condition]) -> FactTest:
    """A rule's conditions as one test: every ``all`` one holds and, when there are ``any``, one of those does,
    tested in order and stopping at the first that decides (as ``all()`` and ``any()`` do)."""
    every = tuple(compile_condition(c) for c in all_)
    some = tuple(compile_condition(c) for c in any_)
    if len(every) == 1 and not some:
        return every[0]  # most rules test one field

    def holds(facts: Mapping[str, Any]) -> bool:
        for test in every:
            if not test(facts):
                return False
        if not some:
            return True
        for test in some:  # noqa: SIM110 - a loop, not any() over a generator: this runs for every lead
            if test(facts):
                return True
        return False
    return holds


# -- scoring ---------------------------------------------------------------------------------


def _round(points: float) -> float:
    return round(points + 0.0, 1) + 0.0  # "+ 0.0" turns -0.0 into 0.0


def _age_days(at: datetime, now: datetime) -> float:
    return max((now - at).total_seconds() / SECONDS_PER_DAY, 0.0)


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


@dataclass(frozen=True)
class _LeadRule:
    """A fit rule or a negative rule on lead fields, compiled."""

    id: str
    category: Literal["fit", "negative"]
    matches: FactTest
    points: float  # rounded, as its line shows them
    reason: str
    # The field whose value '{value}' in the reason names: the first condition's. None when the reason is the same
    # for every lead, and so is the whole line, ``line``.
    value_field: str | None
    line: ScoreLine | None
    blocks_mql: bool

    @classmethod
    def of(cls, rule: FitRule | NegativeRule, category: Literal["fit", "negative"]) -> _LeadRule:
        conditions = [*rule.all, *rule.any]
        names_value = "{value}" in rule.reason
        value_field = conditions[0].field if names_value and conditions else None
        points = _round(rule.points)
        line = None
        if value_field is None:
            # Without conditions there is no value to name, and the reason says "unknown".
            reason = rule.reason.replace("{value}", "unknown") if names_value else rule.reason
            line = ScoreLine(rule_id=rule.id, category=category, points=points, reason=reason)
        blocks_mql = isinstance(rule, NegativeRule) and rule.blocks_mql
        return cls(rule.id, category, compile_rule(rule.all, rule.any), points, rule.reason, value_field, line,
                   blocks_mql)

    def line_for(self, facts: Mapping[str, Any]) -> ScoreLine:
        if self.line is not None:
            return self.line
        value = facts.get(self.value_field) if self.value_field is not None else None
        return ScoreLine(rule_id=self.id, category=self.category, points=self.points,
                         reason=self.reason.replace("{value}", "unknown" if value is None else str(value)))


@dataclass(frozen=True)
class _ActivityTest:
    """Which activities a rule counts: those of its types (casefolded) that happened by now, at most
    ``within_days`` ago (None: any time), and whose facts its conditions hold for."""

    kinds: frozenset[str]
    within_days: float | None
    matches: FactTest

    @classmethod
    def of(cls, rule: BehaviorRule | NegativeRule | FastTrack, types: Sequence[str],
           within_days: float | None) -> _ActivityTest:
        return cls(frozenset({t.casefold() for t in types}), within_days, compile_rule(rule.all, rule.any))


_NOT_YET = -1.0  # the age of an activity that has not happened by now (an age is never negative)


class _Seen:
    """The lead's activities as one score's rules look at them: each activity's casefolded type is worked out
    once, and its age and facts once, when the first rule counting its type needs them (as before, but not again
    for every rule)."""

    __slots__ = ("_ages", "_facts", "_kinds", "_kinds_present", "_now", "activities")

    def __init__(self, activities: Sequence[Activity], now: datetime) -> None:
        self.activities = activities
        self._now = now
        self._kinds = [a.activity_type.casefold() for a in activities]
        self._kinds_present = frozenset(self._kinds)
        self._ages: list[float | None] = [None] * len(activities)
        self._facts: list[dict[str, Any] | None] = [None] * len(activities)

    def has_any(self, kinds: frozenset[str]) -> bool:
        """Whether any activity is of one of these (casefolded) types."""
        return not kinds.isdisjoint(self._kinds_present)

    def age(self, i: int) -> float:
        """Days since activity ``i`` happened; ``_NOT_YET`` when it has not happened by now."""
        age = self._ages[i]
        if age is None:
            at = self.activities[i].occurred_at
            age = self._ages[i] = _age_days(at, self._now) if at <= self._now else _NOT_YET
        return age

    def matching(self, test: _ActivityTest) -> Iterator[int]:
        """The positions of the activities ``test`` counts, in order."""
        for i, kind in enumerate(self._kinds):
            if kind not in test.kinds:
                continue
            age = self.age(i)
            if age == _NOT_YET or (test.within_days is not None and not age <= test.within_days):
                continue
            facts = self._facts[i]
            if facts is None:
                facts = self._facts[i] = self.activities[i].facts()
            if test.matches(facts):
                yield i


class CompiledModel:
    """A scoring model ready to score many leads: its conditions compiled (``compile_condition``), its rules'
    activity types casefolded and its fixed explanation lines built, once for the model instead of for every
    lead. ``StoredModel.compiled`` keeps one for each model version."""

    def __init__(self, spec: ScoringModelSpec) -> None:
        self.spec = spec
        self._fit = tuple(_LeadRule.of(rule, "fit") for rule in spec.fit_rules)
        self._behavior = tuple((rule, _ActivityTest.of(rule, rule.activity_types, rule.window_days))
                               for rule in spec.behavior_rules)
        # In the model's order, which is the order the rules blocking an MQL are named in.
        self._negative = tuple(
            _LeadRule.of(rule, "negative") if rule.activity_types is None
            else (rule, _ActivityTest.of(rule, rule.activity_types, rule.window_days))
            for rule in spec.negative_rules
        )
        self._fast_track = tuple((fast, _ActivityTest.of(fast, fast.activity_types, fast.within_days))
                                 for fast in spec.mql.fast_track)
        half_life = spec.decay.half_life_days
        self._decay_reason = f"behavioral points fade with a {half_life:g}-day half-life" if half_life else None

    def score(self, facts: Mapping[str, Any], activities: Sequence[Activity], now: datetime) -> ScoreResult:
        spec = self.spec
        lines = _Lines()
        for fit in self._fit:
            if fit.matches(facts):
                lines.fit.append(fit.line_for(facts))
        seen = _Seen(activities, now)
        half_life = spec.decay.half_life_days
        decayed_away = 0.0
        for behavior, counted in self._behavior:
            # Most rules count types the lead has none of: they add no line and take nothing (adding their 0.0
            # would not change the sum, which is never -0.0).
            if seen.has_any(counted.kinds):
                decayed_away += _add_behavior(behavior, counted, seen, half_life, lines)
        for negative in self._negative:
            if isinstance(negative, _LeadRule):
                # A negative rule on lead fields takes fit points; one on activities takes behavioral points.
                if negative.matches(facts):
                    lines.fit.append(negative.line_for(facts))
                    if negative.blocks_mql:
                        lines.blocked_by.append(negative.id)
            elif seen.has_any(negative[1].kinds):
                _add_negative(*negative, seen, lines)

        decay_points = _round(decayed_away)
        if decay_points != 0 and self._decay_reason is not None:
            lines.behavior.append(ScoreLine(rule_id="decay", category="decay", points=decay_points,
                                            reason=self._decay_reason))

        fit_points = _round(sum(line.points for line in lines.fit))
        behavior_points = _round(sum(line.points for line in lines.behavior))
        score = _round(fit_points + behavior_points)
        grade = grade_of(fit_points, spec)
        engagement = engagement_of(behavior_points, spec)
        is_mql, mql_reason = self._mql(score, grade, seen, lines.blocked_by)
        tier: Tier = next(
            (t.tier for t in spec.tiers if _tier_matches(t, score, grade, engagement, is_mql)), "cold"
        )
        return ScoreResult(
            score=score, fit_points=fit_points, behavior_points=behavior_points, fit_grade=grade,
            engagement_level=engagement, is_mql=is_mql, tier=tier, lines=(*lines.fit, *lines.behavior),
            mql_reason=mql_reason, mql_blocked_by=tuple(lines.blocked_by),
        )

    def _mql(self, score: float, grade: FitGrade, seen: _Seen, blocked_by: Sequence[str]) -> tuple[bool, str | None]:
        if blocked_by:
            return False, f"blocked by {', '.join(blocked_by)}"
        rule = self.spec.mql
        if score >= rule.threshold and (rule.min_fit_grade is None or grade_at_least(grade, rule.min_fit_grade)):
            return True, f"score {score:g} ≥ {rule.threshold:g}"
        for fast, recent_test in self._fast_track:
            # Looks no further than the first recent activity, as any() over them did.
            recent = seen.has_any(recent_test.kinds) and next(seen.matching(recent_test), None) is not None
            if recent and grade_at_least(grade, fast.min_fit_grade):
                return True, fast.reason
        return False, None


def score_lead(
    spec: ScoringModelSpec, facts: Mapping[str, Any], activities: Sequence[Activity], now: datetime
) -> ScoreResult:
    """One lead's score under ``spec``. Compiles the model for this one use: to score many leads, compile it once
    (``CompiledModel``, or a stored version's ``compiled``)."""
    return CompiledModel(spec).score(facts, activities, now)


def _add_behavior(
    behavior: BehaviorRule, counted: _ActivityTest, seen: _Seen, half_life: float | None, lines: _Lines
) -> float:
    """Add a behavior rule's line (at face value, capped); returns what decay took from it (<= 0)."""
    matched = list(seen.matching(counted))
    if not matched:
        return 0.0
    face = behavior.points * len(matched)
    kept = sum(
        behavior.points * (0.5 ** (seen.age(i) / half_life) if behavior.decays and half_life else 1.0)
        for i in matched
    )
    reason = f"{behavior.reason} ({_counted([seen.activities[i] for i in matched])})"
    if behavior.cap is not None and face > behavior.cap:
        reason += f", capped at {behavior.cap:g}"
        face = behavior.cap
    kept = min(kept, face)
    lines.behavior.append(ScoreLine(rule_id=behavior.id, category="behavior", points=_round(face), reason=reason))
    return kept - _round(face)


def _add_negative(negative: NegativeRule, counted: _ActivityTest, seen: _Seen, lines: _Lines) -> None:
    """A negative rule on activities takes behavioral points, per activity."""
    matched = list(seen.matching(counted))
    if not matched:
        return
    taken = negative.points * len(matched)
    reason = f"{negative.reason} ({_counted([seen.activities[i] for i in matched])})"
    if negative.cap is not None and -taken > negative.cap:
        taken = -negative.cap
        reason += f", capped at -{negative.cap:g}"
    lines.behavior.append(ScoreLine(rule_id=negative.id, category="negative", points=_round(taken), reason=reason))
    if negative.blocks_mql:
        lines.blocked_by.append(negative.id)


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
