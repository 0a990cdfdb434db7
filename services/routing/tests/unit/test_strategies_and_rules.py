"""Team strategies, rule conditions and escalation — pure domain."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from leadflow_contracts import LeadScored
from leadflow_routing import domain
from leadflow_routing.domain import Condition, Rep, Rule, RuleSet, Team

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
FIELDS = domain.lead_fields({"tier": "warm", "profile": {"country": "US"}})


def run(team: Team, reps: list[Rep], picks: int, *, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Apply each pick's state as the handler would write it back to PostgreSQL."""
    chosen = []
    for _ in range(picks):
        pick = domain.pick_rep(team, reps, FIELDS, NOW, tier="warm", exclude=exclude)
        assert pick.rep_id is not None
        chosen.append(pick.rep_id)
        team = replace(team, rr_last_rep_id=pick.state_after.get("last_rep_id", team.rr_last_rep_id))
        reps = [
            replace(r, rr_credit=pick.credits.get(r.id, r.rr_credit),
                    open_leads=r.open_leads + (r.id == pick.rep_id),
                    last_assigned_at=NOW if r.id == pick.rep_id else r.last_assigned_at)
            for r in reps
        ]
    return chosen


def test_round_robin_takes_turns_in_rep_order_and_resumes_after_the_last() -> None:
    reps = [Rep("b"), Rep("a"), Rep("c")]
    assert run(Team("t"), reps, 6) == ["a", "b", "c", "a", "b", "c"]
    assert run(Team("t", rr_last_rep_id="b"), reps, 2) == ["c", "a"]


def test_round_robin_skips_the_unavailable_without_losing_the_turn_order() -> None:
    reps = [Rep("a"), Rep("b", active=False), Rep("c")]
    assert run(Team("t"), reps, 4) == ["a", "c", "a", "c"]


def test_weighted_round_robin_interleaves_in_proportion_to_weight() -> None:
    reps = [Rep("a", weight=3), Rep("b", weight=2), Rep("c", weight=1)]
    picks = run(Team("t", strategy="weighted"), reps, 60)
    assert Counter(picks) == {"a": 30, "b": 20, "c": 10}
    assert picks[:6].count("a") == 3 and picks[:2] != ["a", "a"]


def test_weight_zero_never_gets_leads() -> None:
    picks = run(Team("t", strategy="weighted"), [Rep("a", weight=1), Rep("z", weight=0)], 5)
    assert set(picks) == {"a"}


def test_load_balanced_gives_the_lead_to_the_rep_with_fewest_open_leads() -> None:
    reps = [Rep("a", open_leads=5), Rep("b", open_leads=2), Rep("c", open_leads=3)]
    picks = run(Team("t", strategy="load_balanced"), reps, 4)
    # b (2) → tie b/c at 3: c waited longer → b (3 vs 4) → tie at 4: both just served, by id.
    assert picks == ["b", "c", "b", "b"]


def test_previous_owner_is_never_picked_again() -> None:
    picks = run(Team("t"), [Rep("a"), Rep("b")], 3, exclude=frozenset({"a"}))
    assert picks == ["b", "b", "b"]
    alone = domain.pick_rep(Team("t"), [Rep("a")], FIELDS, NOW, tier="warm", exclude=frozenset({"a"}))
    assert alone.rep_id is None and alone.candidates[0].skipped == "previous_owner"


def test_daily_capacity_resets_on_the_reps_own_calendar_day() -> None:
    tokyo = Rep("t", timezone="Asia/Tokyo", daily_capacity=1, assigned_today=1,
                assigned_day=datetime(2026, 11, 23, tzinfo=UTC).date())
    assert domain.unavailability(tokyo, datetime(2026, 11, 23, 14, 59, tzinfo=UTC), tier="warm") == "daily_capacity"
    # 15:00 UTC is midnight in Tokyo: a new day there.
    assert domain.unavailability(tokyo, datetime(2026, 11, 23, 15, 0, tzinfo=UTC), tier="warm") is None


def test_out_of_office_is_half_open() -> None:
    ooo = domain.OutOfOffice(NOW, NOW + timedelta(hours=1))
    rep = Rep("a", out_of_office=(ooo,))
    assert domain.unavailability(rep, NOW, tier="cold") == "out_of_office"
    assert domain.unavailability(rep, NOW + timedelta(hours=1), tier="cold") is None


def test_a_manager_takes_an_escalation_over_capacity_but_not_while_away() -> None:
    full = Rep("boss", daily_capacity=1, assigned_today=5, assigned_day=NOW.date(), max_open_leads=1, open_leads=9)
    assert domain.unavailability(full, NOW, tier="warm") == "daily_capacity"
    assert domain.manager_unavailability(full, NOW, tier="warm") is None
    away = Rep("boss", out_of_office=(domain.OutOfOffice(NOW - timedelta(hours=1), NOW + timedelta(hours=1)),))
    assert domain.manager_unavailability(away, NOW, tier="warm") == "out_of_office"
    assert domain.manager_unavailability(Rep("boss", active=False), NOW, tier="cold") == "inactive"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (Condition("country", "eq", "us"), True),
        (Condition("country", "ne", "US"), False),
        (Condition("country", "in", ["DE", "US"]), True),
        (Condition("country", "not_in", ["DE"]), True),
        (Condition("score", "gt", 70), True),
        (Condition("score", "lte", 70), False),
        (Condition("score", "between", [70, 80]), True),
        (Condition("job_title", "contains", "engineer"), True),
        (Condition("job_title", "not_contains", "sales"), True),
        (Condition("email_domain", "ends_with", ".com"), True),
        (Condition("utm_campaign", "starts_with", "spring"), True),
        (Condition("job_title", "matches", r"^vp\b"), True),
        (Condition("state", "exists"), False),
        (Condition("state", "not_exists"), True),
        (Condition("state", "eq", "CA"), False),
        (Condition("state", "ne", "CA"), True),
        (Condition("employee_segment", "eq", "201-1000"), True),
        (Condition("region", "eq", "NA"), True),
        (Condition("account.tier", "eq", "strategic"), True),
        (Condition("profile.industry", "eq", "software"), True),
        (Condition("grade", "in", ["A", "B"]), True),
        (Condition("source", "eq", "google"), True),
        (Condition("is_mql", "eq", True), True),
    ],
)
def test_conditions_on_any_lead_field(condition: Condition, expected: bool) -> None:
    data = {
        "tier": "hot", "score": 75.5, "fit_grade": "A", "is_mql": True, "lifecycle_stage": "mql",
        "profile": {"country": "US", "job_title": "VP Engineering", "email_domain": "acme.com",
                    "employee_count": 400, "industry": "Software"},
        "attribution": {"utm_source": "google", "utm_campaign": "spring-launch"},
        "account": {"account_id": "acc-1", "tier": "strategic"},
    }
    assert domain.condition_holds(condition, domain.lead_fields(data)) is expected


def test_lead_fields_flattens_nested_objects_and_derives_fields() -> None:
    """The whole result, pinned: scalars at the top and one level down (by dotted path, the profile's and
    attribution's also by plain name, their None values not), lists and deeper objects skipped, any
    Mapping read as an object (not only a dict), the derived fields added."""
    data = {
        "lead_id": "l-1", "score": 75.5, "engagement_level": 3, "is_mql": True, "duplicate_of": None,
        "breakdown": [{"rule_id": "r1", "points": 10}],
        "profile": MappingProxyType({"country": "de", "employee_count": 400.0, "job_title": None,
                                     "tags": ["a"], "deeper": {"x": 1}}),
        "attribution": {"utm_source": "", "utm_campaign": "spring"},
        "account": {"account_id": "acc-1", "owner_rep_id": None},
        "custom_fields": {"budget": "50k"},
        "fit_grade": "A", "lifecycle_stage": "mql", "form_key": "demo",
    }
    assert domain.lead_fields(data) == {
        "lead_id": "l-1", "score": 75.5, "engagement_level": 3, "is_mql": True, "duplicate_of": None,
        "profile.country": "de", "profile.employee_count": 400.0, "profile.job_title": None,
        "attribution.utm_source": "", "attribution.utm_campaign": "spring",
        "account.account_id": "acc-1", "account.owner_rep_id": None, "custom_fields.budget": "50k",
        "fit_grade": "A", "lifecycle_stage": "mql", "form_key": "demo",
        "utm_source": "", "utm_campaign": "spring", "country": "de", "employee_count": 400.0,
        "account_id": "acc-1", "grade": "A", "stage": "mql", "form": "demo", "source": "direct",
        "region": domain.region_of("de"), "employee_segment": "201-1000",
    }


def test_a_scored_leads_facts_are_the_fields_of_its_whole_payload() -> None:
    """``LeadFacts.of`` leaves the score's lines out of its dump: a list, which ``lead_fields`` skips."""
    scored = LeadScored.model_validate({
        "lead_id": "l-1", "score": 72.5, "fit_grade": "A", "engagement_level": 3, "tier": "hot", "is_mql": True,
        "model_version": "v3", "lifecycle_stage": "mql", "form_key": "demo",
        "breakdown": [{"rule_id": "r1", "category": "fit", "points": 10.0, "reason": "VP"}],
        "profile": {"email": "jane@acme.com", "country": "US", "employee_count": 500, "job_title": "VP"},
        "account": {"account_id": "acc-1", "name": "Acme", "domain": "acme.com", "confidence": 0.9,
                    "method": "domain", "owner_rep_id": "rep-1"},
        "quality": {"score": 90, "reasons": ["email_valid"]},
        "attribution": {"utm_source": "google"}, "custom_fields": {"budget": "50k"},
    })
    facts = domain.LeadFacts.of(scored)
    assert facts.fields == domain.lead_fields(scored.model_dump(mode="json"))
    assert facts.fields["quality.score"] == 90 and facts.fields["source"] == "google"
    assert facts.account == domain.AccountRef("acc-1", "Acme", "rep-1")


def test_a_matches_condition_needs_a_pattern_re2_can_run() -> None:
    assert domain.condition_error("matches", r"^(vp|director)\b") is None
    assert domain.condition_error("eq", r"(a)\1") is None
    for bad in (r"(a)\1", r"vp(?= sales)", "(", "", None, 42):
        assert domain.condition_error("matches", bad) is not None


def test_a_stored_pattern_re2_cannot_run_holds_for_no_lead_instead_of_failing_it() -> None:
    assert domain.condition_holds(Condition("country", "matches", r"(U)\1"), FIELDS) is False


def test_any_and_all_rules_and_first_match_wins_with_a_trace() -> None:
    fields = domain.lead_fields({"tier": "hot", "score": 90, "profile": {"country": "DE"}})
    ruleset = RuleSet(1, (
        Rule("all-fails", team_id="x", conditions=(Condition("tier", "eq", "hot"), Condition("country", "eq", "US"))),
        Rule("any-passes", match="any", team_id="y",
             conditions=(Condition("country", "eq", "US"), Condition("score", "gte", 80))),
        Rule("later", team_id="z"),
    ))
    match = domain.match_rules(ruleset, fields)
    assert match.rule is not None and match.rule.id == "any-passes"
    assert [t["rule_id"] for t in match.trace] == ["all-fails", "any-passes"]
    assert [c["passed"] for c in match.trace[0]["conditions"]] == [True, False]


def test_escalation_needs_a_manager_and_enough_breaches() -> None:
    team = Team("t", manager_rep_id="boss", escalate_after_breaches=3)
    assert not domain.should_escalate(2, team, default_after=2, requested=False)
    assert domain.should_escalate(3, team, default_after=2, requested=False)
    assert domain.should_escalate(1, team, default_after=2, requested=True)
    assert not domain.should_escalate(9, Team("t"), default_after=2, requested=True)
    assert domain.should_escalate(2, Team("t", manager_rep_id="boss"), default_after=2, requested=False)


def test_working_hours_are_validated() -> None:
    with pytest.raises(ValueError):
        domain.parse_working_hours({"mon": ["17:00-09:00"]})
    with pytest.raises(ValueError):
        domain.parse_working_hours({"funday": ["09:00-17:00"]})
    parsed = domain.parse_working_hours({"Monday": ["09:00-12:00", "13:00-17:00"]})
    assert parsed is not None and len(parsed["mon"]) == 2
