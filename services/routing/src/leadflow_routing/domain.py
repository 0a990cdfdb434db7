"""Routing as plain data and rules: lead fields, rule matching, rep availability, team strategies.

No I/O here and no reading of the clock: ``now`` is always passed in, so the same roster and the
same lead give the same decision in a test as in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadflow_contracts import LeadRouted, LeadScored, RoutedOwner
from leadflow_kit.patterns import pattern_error, pattern_found

Strategy = Literal["round_robin", "weighted", "load_balanced"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
SkipReason = Literal[
    "inactive",
    "out_of_office",
    "outside_working_hours",
    "daily_capacity",
    "max_open_leads",
    "territory",
    "previous_owner",
    "unknown_rep",
]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# When a lead goes to sales: at its first fill, or when it becomes an MQL (it waits in nurture until then).
Handoff = Literal["first_fill", "mql"]
NURTURE_QUEUE = "nurture"
MatchMode = Literal["all", "any"]
Operator = Literal[
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between",
    "contains", "not_contains", "starts_with", "ends_with", "matches", "exists", "not_exists",
]
OPERATORS: tuple[str, ...] = get_args(Operator)

# Sales regions by ISO country; a rule or a territory can name the region instead of each country.
REGION_OF_COUNTRY: dict[str, str] = {
    **dict.fromkeys(("US", "CA"), "NA"),
    **dict.fromkeys(
        ("MX", "BR", "AR", "CL", "CO", "PE", "UY", "EC", "VE", "CR", "PA", "DO", "GT", "BO", "PY"), "LATAM"
    ),
    **dict.fromkeys(
        ("GB", "IE", "FR", "DE", "NL", "BE", "LU", "ES", "PT", "IT", "CH", "AT", "SE", "NO", "DK", "FI", "IS",
         "PL", "CZ", "SK", "HU", "RO", "BG", "GR", "HR", "SI", "EE", "LV", "LT", "UA", "TR", "IL", "AE", "SA",
         "QA", "KW", "BH", "OM", "EG", "MA", "ZA", "NG", "KE", "GH"),
        "EMEA",
    ),
    **dict.fromkeys(
        ("JP", "CN", "HK", "TW", "KR", "IN", "SG", "MY", "TH", "ID", "PH", "VN", "AU", "NZ", "PK", "BD", "LK"),
        "APAC",
    ),
}

EMPLOYEE_SEGMENTS: tuple[tuple[int, str], ...] = (
    (10, "1-10"), (50, "11-50"), (200, "51-200"), (1000, "201-1000"), (5000, "1001-5000"),
)


def region_of(country: str | None) -> str | None:
    return REGION_OF_COUNTRY.get(country.upper()) if country else None


def employee_segment(count: int | None) -> str | None:
    if count is None:
        return None
    for ceiling, label in EMPLOYEE_SEGMENTS:
        if count <= ceiling:
            return label
    return "5001+"


# -- lead fields ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRef:
    """The account a lead matched, as routing uses it: its owner takes the lead first."""

    account_id: str | None
    name: str | None
    owner_rep_id: str | None


@dataclass(frozen=True)
class LeadFacts:
    """What a routing decision reads of a lead: the fields rules test, its tier, its account."""

    fields: Mapping[str, Any]
    tier: str | None
    account: AccountRef | None = None

    @classmethod
    def of(cls, scored: LeadScored) -> LeadFacts:
        account = scored.account
        # The score's lines are a list, which no rule tests (lead_fields skips lists): not dumped.
        return cls(lead_fields(scored.model_dump(mode="json", exclude={"breakdown"})), scored.tier,
                   AccountRef(account.account_id, account.name, account.owner_rep_id) if account else None)

    @classmethod
    def of_payload(cls, payload: Mapping[str, Any]) -> LeadFacts:
        """A dry run's lead: a ``lead.scored``-shaped JSON object, which may be partial or flat."""
        account = payload.get("account")
        ref = (AccountRef(account.get("account_id"), account.get("name"), account.get("owner_rep_id"))
               if isinstance(account, Mapping) else None)
        return cls(lead_fields(payload), payload.get("tier"), ref)


# JSON's scalars: tested first, since ``isinstance(value, Mapping)`` goes through the ABC's instance check
# (about half of this function's time for the forty-odd values of a lead, none of them a Mapping).
_PLAIN = (str, int, float, bool, type(None))


def lead_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Every field a rule may test, from a ``lead.scored`` payload (JSON form).

    Nested objects are reachable both by their dotted path (``profile.country``) and, for the
    profile and attribution, by their plain name (``country``, ``utm_source``); derived fields
    ``region``, ``employee_segment``, ``source``, ``grade`` and ``stage`` are added.
    """
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, _PLAIN):
            fields[key] = value
        elif isinstance(value, Mapping):
            for sub, sub_value in value.items():
                if isinstance(sub_value, _PLAIN) or not isinstance(sub_value, Mapping | list):
                    fields[f"{key}.{sub}"] = sub_value
        elif not isinstance(value, list):
            fields[key] = value
    for nested in ("attribution", "profile"):
        for sub, sub_value in (data.get(nested) or {}).items():
            if sub_value is not None and (isinstance(sub_value, _PLAIN) or not isinstance(sub_value, Mapping | list)):
                fields[sub] = sub_value
    account = data.get("account") or {}
    fields["account_id"] = account.get("account_id")
    fields["grade"] = data.get("fit_grade")
    fields["stage"] = data.get("lifecycle_stage")
    fields["form"] = data.get("form_key")
    fields["source"] = (data.get("attribution") or {}).get("utm_source") or "direct"
    fields["region"] = region_of(fields.get("country"))
    count = fields.get("employee_count")
    fields["employee_segment"] = employee_segment(int(count)) if isinstance(count, int | float) else None
    return fields


# -- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    field: str
    op: Operator = "eq"
    value: Any = None


@dataclass(frozen=True)
class Rule:
    id: str
    name: str = ""
    conditions: tuple[Condition, ...] = ()
    match: MatchMode = "all"
    team_id: str | None = None
    rep_id: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[Rule, ...]
    fallback_queue: str | None = None
    handoff: Handoff = "first_fill"


def _norm(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple | set) else [value]


def condition_holds(condition: Condition, fields: Mapping[str, Any]) -> bool:
    actual = fields.get(condition.field)
    op, expected = condition.op, condition.value
    if op == "exists":
        return actual is not None and actual != ""
    if op == "not_exists":
        return actual is None or actual == ""
    if actual is None:
        # A missing field satisfies only the negative tests.
        return op in ("ne", "not_in", "not_contains")
    if op == "eq":
        return bool(_norm(actual) == _norm(expected))
    if op == "ne":
        return bool(_norm(actual) != _norm(expected))
    if op == "in":
        return _norm(actual) in {_norm(v) for v in _as_list(expected)}
    if op == "not_in":
        return _norm(actual) not in {_norm(v) for v in _as_list(expected)}
    if op in ("gt", "gte", "lt", "lte", "between"):
        number = _number(actual)
        if number is None:
            return False
        if op == "between":
            low, high = (_number(v) for v in _as_list(expected)[:2])
            return low is not None and high is not None and low <= number <= high
        bound = _number(expected)
        if bound is None:
            return False
        return {"gt": number > bound, "gte": number >= bound, "lt": number < bound, "lte": number <= bound}[op]
    text, wanted = str(actual).casefold(), str(expected).casefold()
    if op == "contains":
        return wanted in text
    if op == "not_contains":
        return wanted not in text
    if op == "starts_with":
        return text.startswith(wanted)
    if op == "ends_with":
        return text.endswith(wanted)
    if op == "matches":
        return pattern_found(str(expected), str(actual))
    raise ValueError(f"unknown operator {op!r}")


def condition_error(op: str, value: Any) -> str | None:
    """Why a condition's value cannot be used with its operator, or None."""
    if op == "matches":
        if not isinstance(value, str) or not value:
            return "'matches' needs a pattern (a non-empty string)"
        reason = pattern_error(value)
        return f"'{value}' is not a pattern RE2 can run: {reason}" if reason else None
    return None


def rule_matches(rule: Rule, fields: Mapping[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    """Whether ``rule`` matches, and each condition's verdict for the audit trail."""
    verdicts = [
        {"field": c.field, "op": c.op, "value": c.value, "actual": fields.get(c.field),
         "passed": condition_holds(c, fields)}
        for c in rule.conditions
    ]
    if not verdicts:
        return True, verdicts
    passed = [v["passed"] for v in verdicts]
    return (all(passed) if rule.match == "all" else any(passed)), verdicts


@dataclass(frozen=True)
class RuleMatch:
    rule: Rule | None
    trace: list[dict[str, Any]]


def match_rules(ruleset: RuleSet | None, fields: Mapping[str, Any]) -> RuleMatch:
    """The first enabled rule, in order, whose conditions hold; the trace shows each rule tried."""
    trace: list[dict[str, Any]] = []
    for rule in ruleset.rules if ruleset else ():
        if not rule.enabled:
            trace.append({"rule_id": rule.id, "matched": False, "skipped": "disabled"})
            continue
        matched, verdicts = rule_matches(rule, fields)
        trace.append({"rule_id": rule.id, "matched": matched, "conditions": verdicts})
        if matched:
            return RuleMatch(rule, trace)
    return RuleMatch(None, trace)


# -- reps and availability ------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    start: time
    end: time

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class OutOfOffice:
    start: datetime
    end: datetime
    reason: str | None = None


@dataclass(frozen=True)
class Rep:
    id: str
    name: str = ""
    email: str | None = None
    team_id: str | None = None
    territories: tuple[str, ...] = ()
    weight: int = 1
    daily_capacity: int | None = None
    max_open_leads: int | None = None
    timezone: str = "UTC"
    # None means "no schedule": always working. Keys are mon..sun.
    working_hours: Mapping[str, tuple[TimeRange, ...]] | None = None
    out_of_office: tuple[OutOfOffice, ...] = ()
    active: bool = True
    open_leads: int = 0
    assigned_today: int = 0
    assigned_day: date | None = None
    rr_credit: int = 0
    last_assigned_at: datetime | None = None

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def local_day(self, now: datetime) -> date:
        return now.astimezone(self.zone()).date()

    def assigned_on(self, day: date) -> int:
        # The daily counter resets when the rep's own calendar day changes.
        return self.assigned_today if self.assigned_day == day else 0


def valid_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_working_hours(raw: Mapping[str, Iterable[str]] | None) -> dict[str, tuple[TimeRange, ...]] | None:
    """``{"mon": ["09:00-12:00", "13:00-17:00"], ...}``; a day not listed is a day off."""
    if raw is None:
        return None
    hours: dict[str, tuple[TimeRange, ...]] = {}
    for day, ranges in raw.items():
        key = day[:3].lower()
        if key not in WEEKDAYS:
            raise ValueError(f"unknown weekday {day!r}; use mon..sun")
        parsed = []
        for span in ranges:
            start_text, _, end_text = span.partition("-")
            start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
            if end <= start:
                raise ValueError(f"{day} {span}: the end must be after the start")
            parsed.append(TimeRange(start, end))
        hours[key] = tuple(parsed)
    return hours


def in_working_hours(rep: Rep, now: datetime) -> bool:
    if rep.working_hours is None:
        return True
    local = now.astimezone(rep.zone())
    day = WEEKDAYS[local.weekday()]
    return any(r.contains(local.time()) for r in rep.working_hours.get(day, ()))


def out_of_office(rep: Rep, now: datetime) -> bool:
    return any(o.start <= now < o.end for o in rep.out_of_office)


def unavailability(rep: Rep, now: datetime, *, tier: str | None) -> SkipReason | None:
    """Why ``rep`` cannot take a lead now, or None. Working hours bind only for hot leads."""
    if not rep.active:
        return "inactive"
    if out_of_office(rep, now):
        return "out_of_office"
    if tier == "hot" and not in_working_hours(rep, now):
        return "outside_working_hours"
    if rep.daily_capacity is not None and rep.assigned_on(rep.local_day(now)) >= rep.daily_capacity:
        return "daily_capacity"
    if rep.max_open_leads is not None and rep.open_leads >= rep.max_open_leads:
        return "max_open_leads"
    return None


def manager_unavailability(manager: Rep, now: datetime, *, tier: str | None) -> SkipReason | None:
    """Why a team's manager cannot take an escalated lead now, or None. Absence binds (inactive, out of
    office, outside working hours for a hot lead); capacity limits do not: escalation is the exception
    those limits give way to."""
    reason = unavailability(manager, now, tier=tier)
    return None if reason in ("daily_capacity", "max_open_leads") else reason


def territory_keys(fields: Mapping[str, Any]) -> set[str]:
    keys: set[str] = set()
    country = fields.get("country")
    if isinstance(country, str) and country:
        keys.add(country.upper())
        state = fields.get("state")
        if isinstance(state, str) and state:
            keys.add(f"{country.upper()}-{state.upper()}")
    region = fields.get("region")
    if isinstance(region, str):
        keys.add(region.upper())
    return keys


def covers_territory(rep: Rep, fields: Mapping[str, Any]) -> bool:
    """A rep without territories covers everything; otherwise one must name the lead's
    country (``US``), state (``US-CA``) or region (``EMEA``)."""
    if not rep.territories:
        return True
    keys = territory_keys(fields)
    return any(t.upper() in keys or t == "*" for t in rep.territories)


# -- team strategies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Team:
    id: str
    name: str = ""
    strategy: Strategy = "round_robin"
    manager_rep_id: str | None = None
    escalate_after_breaches: int | None = None
    fallback_queue: str | None = None
    rr_last_rep_id: str | None = None


@dataclass(frozen=True)
class Candidate:
    rep_id: str
    skipped: SkipReason | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rep_id": self.rep_id, "skipped": self.skipped}


@dataclass(frozen=True)
class Pick:
    """The strategy's choice among a team's reps, with what it saw and the state it leaves."""

    rep_id: str | None
    strategy: Strategy
    candidates: tuple[Candidate, ...]
    state_before: dict[str, Any]
    state_after: dict[str, Any]
    credits: Mapping[str, int] = field(default_factory=dict)

    def audit(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "candidates": [c.as_dict() for c in self.candidates],
            "chosen_rep_id": self.rep_id,
            "strategy_state": {"before": self.state_before, "after": self.state_after},
        }


def assess(
    reps: Sequence[Rep], fields: Mapping[str, Any], now: datetime, *, tier: str | None,
    exclude: frozenset[str] = frozenset(),
) -> list[Candidate]:
    candidates = []
    for rep in reps:
        reason: SkipReason | None
        if rep.id in exclude:
            reason = "previous_owner"
        else:
            reason = unavailability(rep, now, tier=tier)
            if reason is None and not covers_territory(rep, fields):
                reason = "territory"
        candidates.append(Candidate(rep.id, reason))
    return candidates


def pick_rep(
    team: Team,
    reps: Sequence[Rep],
    fields: Mapping[str, Any],
    now: datetime,
    *,
    tier: str | None,
    exclude: frozenset[str] = frozenset(),
) -> Pick:
    """Choose one of ``team``'s reps by its strategy, skipping the unavailable.

    The caller holds the team's row lock, so ``team.rr_last_rep_id`` and the reps' counters and
    credits are the current truth and the returned state can be written back as is.
    """
    ordered = sorted(reps, key=lambda r: r.id)
    if team.strategy == "weighted":
        return _weighted(team, ordered, fields, now, tier, exclude)
    if team.strategy == "load_balanced":
        return _load_balanced(ordered, fields, now, tier, exclude)
    return _round_robin(team, ordered, fields, now, tier, exclude)


def _round_robin(
    team: Team, ordered: list[Rep], fields: Mapping[str, Any], now: datetime, tier: str | None,
    exclude: frozenset[str],
) -> Pick:
    last = team.rr_last_rep_id
    # The rotation starts right after the last rep served, so a roster change never resets it.
    rotation = [r for r in ordered if last is None or r.id > last] + [r for r in ordered if last is not None
                                                                        and r.id <= last]
    candidates = assess(rotation, fields, now, tier=tier, exclude=exclude)
    chosen = next((c.rep_id for c in candidates if c.skipped is None), None)
    return Pick(chosen, "round_robin", tuple(candidates), {"last_rep_id": last},
                {"last_rep_id": chosen if chosen is not None else last})


def _weighted(
    team: Team, ordered: list[Rep], fields: Mapping[str, Any], now: datetime, tier: str | None,
    exclude: frozenset[str],
) -> Pick:
    # Smooth weighted round-robin (as nginx does): every eligible rep earns its weight, the
    # richest is chosen and pays the total, so picks interleave in proportion to weight.
    candidates = assess(ordered, fields, now, tier=tier, exclude=exclude)
    eligible = [r for r, c in zip(ordered, candidates, strict=True) if c.skipped is None]
    before = {r.id: r.rr_credit for r in ordered}
    if not eligible:
        return Pick(None, "weighted", tuple(candidates), {"credits": before}, {"credits": before})
    credits = {r.id: r.rr_credit + max(r.weight, 0) for r in eligible}
    chosen = max(eligible, key=lambda r: (credits[r.id], -ordered.index(r)))
    credits[chosen.id] -= sum(max(r.weight, 0) for r in eligible)
    after = {**before, **credits}
    return Pick(chosen.id, "weighted", tuple(candidates), {"credits": before}, {"credits": after}, credits)


def _load_balanced(
    ordered: list[Rep], fields: Mapping[str, Any], now: datetime, tier: str | None, exclude: frozenset[str]
) -> Pick:
    candidates = assess(ordered, fields, now, tier=tier, exclude=exclude)
    eligible = [r for r, c in zip(ordered, candidates, strict=True) if c.skipped is None]
    loads = {r.id: r.open_leads for r in ordered}
    if not eligible:
        return Pick(None, "load_balanced", tuple(candidates), {"open_leads": loads}, {"open_leads": loads})
    oldest = datetime.min.replace(tzinfo=now.tzinfo)
    chosen = min(eligible, key=lambda r: (r.open_leads, r.last_assigned_at or oldest, r.id))
    after = {**loads, chosen.id: loads[chosen.id] + 1}
    return Pick(chosen.id, "load_balanced", tuple(candidates), {"open_leads": loads}, {"open_leads": after})


# -- escalation -----------------------------------------------------------------------------


def should_escalate(breach_count: int, team: Team | None, *, default_after: int, requested: bool) -> bool:
    """Escalate to the manager when the SLA service asks or the lead has breached often enough."""
    if team is None or team.manager_rep_id is None:
        return False
    threshold = team.escalate_after_breaches or default_after
    return requested or breach_count >= threshold


# -- decisions ------------------------------------------------------------------------------

Outcome = Literal["assigned", "account_owner", "kept_owner", "fallback", "rerouted", "escalated", "claimed",
                  "reassigned", "nurture"]


@dataclass
class Decision:
    outcome: Outcome
    reason: str
    rep: Rep | None = None
    team_id: str | None = None
    queue: str | None = None
    rule_id: str | None = None
    ruleset_version: int | None = None
    strategy: str | None = None
    pick: Pick | None = None
    audit: dict[str, Any] = field(default_factory=dict)
    fallback_team: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "owner": owner_dict(self.rep),
            "team_id": self.team_id,
            "queue": self.queue,
            "rule_id": self.rule_id,
            "ruleset_version": self.ruleset_version,
            "strategy": self.strategy,
            "audit": self.audit,
        }


def owner_dict(rep: Rep | None) -> dict[str, Any] | None:
    if rep is None:
        return None
    return {"rep_id": rep.id, "name": rep.name, "email": rep.email, "team_id": rep.team_id}


def skip_reason(rep: Rep | None, now: datetime, *, tier: str | None) -> SkipReason | None:
    """Why a rep named outright (an account owner, a rule's rep) cannot take the lead, or None."""
    return "unknown_rep" if rep is None else unavailability(rep, now, tier=tier)


def account_owner_decision(
    account: AccountRef, owner: Rep | None, skipped: SkipReason | None, audit: dict[str, Any]
) -> Decision | None:
    """The account owner takes the lead when available; either way the audit says what was seen."""
    audit["account_owner"] = {"account_id": account.account_id, "rep_id": account.owner_rep_id, "skipped": skipped}
    if owner is None or skipped is not None:
        return None
    return Decision("account_owner", f"account owner of {account.name or account.account_id}",
                    rep=owner, team_id=owner.team_id, audit=audit)


@dataclass(frozen=True)
class MatchedRule:
    """The rule a lead matched, in the rule set it came from."""

    rule: Rule
    ruleset_version: int | None
    fallback_queue: str


def no_rule_decision(ruleset_version: int | None, fallback_queue: str, audit: dict[str, Any]) -> Decision:
    audit["fallback"] = {"queue": fallback_queue, "why": "no_rule_matched"}
    return Decision("fallback", "no routing rule matched", queue=fallback_queue, ruleset_version=ruleset_version,
                    audit=audit, fallback_team="none")


def rep_rule_decision(
    matched: MatchedRule, rep: Rep | None, now: datetime, *, tier: str | None, audit: dict[str, Any]
) -> Decision:
    """A rule naming one rep: that rep, or the fallback queue when the rep cannot take it."""
    rule, version, queue = matched.rule, matched.ruleset_version, matched.fallback_queue
    skipped = skip_reason(rep, now, tier=tier)
    audit["candidates"] = [{"rep_id": rule.rep_id, "skipped": skipped}]
    if rep is not None and skipped is None:
        return Decision("assigned", f"rule {rule.id} names rep {rep.id}", rep=rep, team_id=rep.team_id,
                        rule_id=rule.id, ruleset_version=version, audit=audit)
    audit["fallback"] = {"queue": queue, "why": f"rep {rule.rep_id} unavailable: {skipped}"}
    return Decision("fallback", f"rule {rule.id}: rep {rule.rep_id} unavailable ({skipped})",
                    queue=queue, rule_id=rule.id, ruleset_version=version, audit=audit, fallback_team=rule.rep_id)


def team_rule_decision(
    matched: MatchedRule, team: Team | None, reps: Sequence[Rep], facts: LeadFacts, now: datetime,
    audit: dict[str, Any],
) -> Decision:
    """A rule naming a team: the rep its strategy picks, or a fallback queue when nobody can take it."""
    rule, version, fallback_queue = matched.rule, matched.ruleset_version, matched.fallback_queue
    team_id = rule.team_id or ""
    if team is None:
        audit["fallback"] = {"queue": fallback_queue, "why": f"unknown team {team_id}"}
        return Decision("fallback", f"rule {rule.id}: unknown team {team_id}", queue=fallback_queue,
                        rule_id=rule.id, ruleset_version=version, audit=audit, fallback_team=team_id)
    pick = pick_rep(team, reps, facts.fields, now, tier=facts.tier)
    audit.update(pick.audit())
    audit["team_id"] = team.id
    if pick.rep_id is None:
        queue = team.fallback_queue or fallback_queue
        audit["fallback"] = {"queue": queue, "why": "whole team unavailable"}
        return Decision("fallback", f"rule {rule.id}: no rep of team {team.id} available", team_id=team.id,
                        queue=queue, rule_id=rule.id, ruleset_version=version, strategy=team.strategy, pick=pick,
                        audit=audit, fallback_team=team.id)
    chosen = next(r for r in reps if r.id == pick.rep_id)
    return Decision("assigned", f"rule {rule.id} → team {team.id} ({team.strategy})", rep=chosen, team_id=team.id,
                    rule_id=rule.id, ruleset_version=version, strategy=team.strategy, pick=pick, audit=audit)


def kept_owner_decision(kept_lead_id: str, owner: Rep, team_id: str | None, now: datetime) -> Decision:
    """A repeat fill or duplicate of a lead already routed keeps that lead's owner."""
    return Decision(
        "kept_owner", f"duplicate of already-routed lead {kept_lead_id}: keeps its owner",
        rep=owner, team_id=team_id,
        audit={"decided_at": now.isoformat(), "kept_owner_of": kept_lead_id, "owner_rep_id": owner.id},
    )


# -- re-routing on an SLA breach ------------------------------------------------------------


def reroute_within_team(
    team: Team, reps: Sequence[Rep], facts: LeadFacts, now: datetime, *, current: str, breach_count: int,
    audit: dict[str, Any],
) -> Decision | None:
    """The next available rep of the team, never the owner who breached; None when there is none."""
    pick = pick_rep(team, reps, facts.fields, now, tier=facts.tier, exclude=frozenset({current}))
    audit.update(pick.audit())
    if pick.rep_id is None:
        audit["escalation"] = "no other rep of the team is available"
        return None
    chosen = next(r for r in reps if r.id == pick.rep_id)
    return Decision("rerouted", f"SLA breach #{breach_count}: reassigned within team {team.id}",
                    rep=chosen, team_id=team.id, strategy=team.strategy, pick=pick, audit=audit)


def escalation_decision(
    team: Team, manager: Rep | None, now: datetime, *, tier: str | None, current: str, breach_count: int,
    audit: dict[str, Any],
) -> Decision | None:
    """The team's manager takes the lead, unless absent or the owner who breached."""
    skipped = "unknown_rep" if manager is None else manager_unavailability(manager, now, tier=tier)
    audit["manager"] = {"rep_id": team.manager_rep_id, "skipped": skipped}
    if manager is None or skipped is not None or manager.id == current:
        return None
    return Decision("escalated", f"SLA breach #{breach_count}: escalated to manager of team {team.id}",
                    rep=manager, team_id=team.id, audit=audit)


# -- what a decision writes -----------------------------------------------------------------


@dataclass
class RepChange:
    """What one decision does to a rep: counts a lead on its local day, releases one, sets its credit."""

    counted_on: date | None = None
    released: bool = False
    credit: int | None = None


@dataclass(frozen=True)
class Reroute:
    reason: str
    previous_owner_rep_id: str | None = None


@dataclass(frozen=True)
class AssignmentWrite:
    """Everything one decision changes: the audit row, the lead, the reps' counters and credits and
    the team's turn (``turn_team_id`` None advances no team)."""

    assignment_id: str
    lead_id: str
    decision: Decision
    reroute: Reroute | None
    event_id: str
    at: datetime
    rep_changes: Mapping[str, RepChange]
    turn_team_id: str | None
    rr_last_rep_id: str | None

    @property
    def status(self) -> str:
        if self.decision.outcome == "nurture":
            return "nurture"
        return "assigned" if self.decision.rep is not None else "queued"


def rep_changes(
    decision: Decision, now: datetime, *, previous_owner: str | None, count_kept_owner: bool
) -> tuple[dict[str, RepChange], str | None, str | None]:
    """The reps a decision changes, the team whose turn it takes and the round-robin cursor it leaves.

    A kept owner is counted only with ``count_kept_owner`` (a duplicate of another lead): the lead
    it keeps was counted when it was routed."""
    changes: dict[str, RepChange] = {}
    if decision.rep is not None and (decision.outcome != "kept_owner" or count_kept_owner):
        changes.setdefault(decision.rep.id, RepChange()).counted_on = decision.rep.local_day(now)
    turn_team_id: str | None = None
    rr_last_rep_id: str | None = None
    pick = decision.pick
    if pick is not None and pick.rep_id is not None and decision.team_id:
        turn_team_id = decision.team_id
        if pick.strategy == "round_robin":
            rr_last_rep_id = pick.rep_id
        for rep_id, credit in pick.credits.items():
            changes.setdefault(rep_id, RepChange()).credit = credit
    if previous_owner and (decision.rep is None or decision.rep.id != previous_owner):
        changes.setdefault(previous_owner, RepChange()).released = True
    return changes, turn_team_id, rr_last_rep_id


def changed_rep(rep: Rep, change: RepChange, at: datetime) -> Rep:
    """What a decision's ``change`` does to ``rep`` (the update of ``store.WRITE_DECISION``): a counted
    lead opens and counts on the rep's local day (the counter restarts on a new day), a released one
    closes, a credit is the rep's new weighted round-robin balance."""
    if change.counted_on is not None:
        today = rep.assigned_today + 1 if rep.assigned_day == change.counted_on else 1
        rep = replace(rep, open_leads=rep.open_leads + 1, assigned_today=today, assigned_day=change.counted_on,
                      last_assigned_at=at)
    elif change.released:
        rep = replace(rep, open_leads=max(rep.open_leads - 1, 0))
    return replace(rep, rr_credit=change.credit) if change.credit is not None else rep


@dataclass
class TeamTurns:
    """How many turns a batch's decisions took of a team, and the round-robin cursor they left."""

    count: int = 0
    rr_last_rep_id: str | None = None


@dataclass
class Roster:
    """The teams and reps a batch holds locked, as its decisions leave them (in memory until written).

    A team is here with every rep of it (``team_ids``); a rep may be here alone (an account owner, a
    rule's rep). Each decision's write is applied in turn, so the next decision of the batch sees the
    cursor, loads, daily counts and credits the one-by-one path would read back from the database."""

    teams: dict[str, Team] = field(default_factory=dict)
    reps: dict[str, Rep | None] = field(default_factory=dict)
    team_ids: set[str] = field(default_factory=set)
    changed_reps: set[str] = field(default_factory=set)
    turns: dict[str, TeamTurns] = field(default_factory=dict)

    def add_team(self, team: Team | None, team_id: str, reps: Iterable[Rep]) -> None:
        """A team read later (with its reps); a rep already here keeps the state the batch gave it."""
        self.team_ids.add(team_id)
        if team is not None:
            self.teams.setdefault(team_id, team)
        for rep in reps:
            self.reps.setdefault(rep.id, rep)

    def team_with_reps(self, team_id: str) -> tuple[Team | None, list[Rep]]:
        reps = [r for r in self.reps.values() if r is not None and r.team_id == team_id]
        return self.teams.get(team_id), sorted(reps, key=lambda r: r.id)

    def apply(self, write: AssignmentWrite) -> None:
        for rep_id, change in write.rep_changes.items():
            rep = self.reps.get(rep_id)
            if rep is not None:
                self.reps[rep_id] = changed_rep(rep, change, write.at)
                self.changed_reps.add(rep_id)
        team_id = write.turn_team_id
        if team_id is not None and team_id in self.teams:
            turns = self.turns.setdefault(team_id, TeamTurns())
            turns.count += 1
            if write.rr_last_rep_id is not None:
                turns.rr_last_rep_id = write.rr_last_rep_id
                self.teams[team_id] = replace(self.teams[team_id], rr_last_rep_id=write.rr_last_rep_id)

    def changed(self) -> list[Rep]:
        return [rep for rep_id in sorted(self.changed_reps) if (rep := self.reps.get(rep_id)) is not None]


def lead_routed(
    lead_id: str, assignment_id: str, scored: LeadScored, decision: Decision, reroute: Reroute | None
) -> LeadRouted:
    owner = decision.rep
    return LeadRouted(
        lead_id=lead_id,
        assignment_id=assignment_id,
        owner=RoutedOwner(rep_id=owner.id, name=owner.name, email=owner.email, team_id=owner.team_id)
        if owner else None,
        queue=decision.queue,
        team_id=decision.team_id,
        reason=decision.reason,
        rule_id=decision.rule_id,
        strategy=decision.strategy,
        tier=scored.tier,
        score=scored.score,
        reroute=reroute is not None,
        reroute_reason=reroute.reason if reroute else None,
        previous_owner_rep_id=reroute.previous_owner_rep_id if reroute else None,
        escalated=decision.outcome == "escalated",
        kept_owner=decision.outcome == "kept_owner",
        form_key=scored.form_key,
        attribution=scored.attribution,
        nurture=decision.outcome == "nurture",
    )


def decision_team(decision: Decision) -> str | None:
    """The team a decision hands the lead to: the owner's, else the queue's."""
    return decision.team_id or (decision.rep.team_id if decision.rep else None) or decision.fallback_team


def webhook_data(scored: LeadScored, routed: LeadRouted, decision: Decision, now: datetime) -> dict[str, Any]:
    """What the CRM receives: the person, their consent and what they filled in, its enrichment, its
    score explained, the owner and why (``lifecycle.routed_data`` adds the SLA clock sla will open)."""
    return {
        "lead_id": routed.lead_id,
        "lead": {
            "id": routed.lead_id,
            "profile": scored.profile.model_dump(mode="json"),
            "form_key": scored.form_key,
            "attribution": scored.attribution.model_dump(mode="json"),
            "lifecycle_stage": scored.lifecycle_stage,
            "duplicate_of": scored.duplicate_of,
            "consent": scored.consent.model_dump(mode="json", exclude={"ip"}) if scored.consent else None,
            "custom_fields": scored.custom_fields,
            "message": scored.message,
        },
        "enrichment": {
            "account": scored.account.model_dump(mode="json") if scored.account else None,
            "quality": scored.quality.model_dump(mode="json") if scored.quality else None,
        },
        "score": {
            "score": scored.score,
            "fit_grade": scored.fit_grade,
            "engagement_level": scored.engagement_level,
            "tier": scored.tier,
            "is_mql": scored.is_mql,
            "model_version": scored.model_version,
            "explanation": [line.model_dump(mode="json") for line in scored.breakdown],
        },
        "owner": routed.owner.model_dump() if routed.owner else None,
        "queue": routed.queue,
        "routing": {
            "assignment_id": routed.assignment_id,
            "outcome": decision.outcome,
            "reason": routed.reason,
            "rule_id": routed.rule_id,
            "ruleset_version": decision.ruleset_version,
            "strategy": routed.strategy,
            "reroute": routed.reroute,
            "reroute_reason": routed.reroute_reason,
            "previous_owner_rep_id": routed.previous_owner_rep_id,
            "escalated": routed.escalated,
            "routed_at": now.isoformat(),
        },
    }
