"""Scoring rules over time and the lifecycle stages, with the time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadflow_kit.clock import FrozenClock
from leadflow_scoring import domain
from leadflow_scoring.model import default_model, validate_model

MODEL = default_model()
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
GOOD_FIT = domain.lead_facts(domain.LeadFields.model_validate(
    {"profile": {"industry": "SaaS", "employee_count": 300, "seniority": "director",
                 "function": "sales", "country": "GB", "email_type": "corporate"},
     "quality": {"score": 70}}))  # fit 61, grade A


def demo(at: datetime, n: int = 1) -> list[domain.Activity]:
    return [domain.Activity(f"d{i}", "demo_requested", at) for i in range(n)]


def test_behavioral_points_halve_every_half_life_and_a_stale_mql_drops_out() -> None:
    clock = FrozenClock(T0)
    activities = [*demo(T0), *(domain.Activity(f"p{i}", "pricing_page_view", T0) for i in range(2))]

    fresh = domain.score_lead(MODEL, GOOD_FIT, activities, clock.now())
    assert (fresh.score, fresh.behavior_points, fresh.is_mql) == (121, 60, True)

    clock.advance(timedelta(days=15))  # pricing views still in their 30-day window
    mid = domain.score_lead(MODEL, GOOD_FIT, activities, clock.now())
    assert mid.behavior_points == pytest.approx(60 * 0.5 ** 0.5, abs=0.05)
    assert mid.is_mql

    clock.advance(timedelta(days=45))  # day 60: pricing out of window, demo at a quarter
    late = domain.score_lead(MODEL, GOOD_FIT, activities, clock.now())
    assert {line.rule_id: line.points for line in late.lines if line.category != "fit"} == {
        "demo_request": 40, "decay": -30}
    assert (late.score, late.engagement_level, late.is_mql, late.tier) == (71, 2, False, "warm")


def test_activities_in_the_future_do_not_count_yet() -> None:
    result = domain.score_lead(MODEL, GOOD_FIT, demo(T0 + timedelta(hours=1)), T0)
    assert result.behavior_points == 0


def test_the_cap_limits_what_is_left_after_decay() -> None:
    # Three month-old demo requests still hold 60 points after decay; the cap keeps 40, no decay shows.
    result = domain.score_lead(MODEL, GOOD_FIT, demo(T0 - timedelta(days=30), n=3), T0)
    lines = {line.rule_id: line for line in result.lines}
    assert lines["demo_request"].points == 40
    assert lines["demo_request"].reason == "Requested a demo (3 x demo_requested), capped at 40"
    assert "decay" not in lines
    # One of them alone has decayed to half.
    single = {line.rule_id: line.points for line in domain.score_lead(
        MODEL, GOOD_FIT, demo(T0 - timedelta(days=30)), T0).lines}
    assert (single["demo_request"], single["decay"]) == (40, -20)


def test_a_model_without_decay_keeps_points() -> None:
    text = default_model().model_dump(mode="json")
    text["decay"] = {"half_life_days": None}
    no_decay = validate_model(text)
    result = domain.score_lead(no_decay, GOOD_FIT, demo(T0 - timedelta(days=60)), T0)
    assert "decay" not in {line.rule_id for line in result.lines}
    assert result.behavior_points == 40


def test_negative_activity_rules_are_capped_and_lead_rules_hit_the_grade() -> None:
    careers = [domain.Activity(f"c{i}", "careers_page_view", T0) for i in range(4)]
    result = domain.score_lead(MODEL, GOOD_FIT, careers, T0)
    assert {line.rule_id: line.points for line in result.lines if line.category == "negative"} == {"job_seeker": -30}
    assert result.fit_grade == "A"  # activity negatives lower engagement, not fit
    assert result.behavior_points == -30

    student = domain.lead_facts(domain.LeadFields.model_validate(
        {"profile": {**{"industry": "SaaS", "employee_count": 300}, "email_domain": "mit.edu"},
         "quality": {"score": 70}}))
    graded = domain.score_lead(MODEL, student, [], T0)
    assert graded.fit_points == 0 and graded.fit_grade == "D"
    assert graded.mql_blocked_by == ("student",)


@pytest.mark.parametrize(
    ("current", "is_mql", "expected"),
    [
        ("lead", False, "lead"),
        ("lead", True, "mql"),
        ("mql", True, "mql"),
        ("mql", False, "recycled"),
        ("recycled", True, "mql"),
        ("recycled", False, "recycled"),
    ],
)
def test_scoring_owns_lead_mql_and_recycle(current: domain.Stage, is_mql: bool, expected: str) -> None:
    assert domain.stage_after_scoring(current, is_mql) == expected


@pytest.mark.parametrize(
    ("current", "touch", "expected"),
    [
        ("mql", "accepted", "sal"),
        ("lead", "contacted", "sal"),
        ("sal", "contacted", "sal"),
        ("sal", "meeting_booked", "sql"),
        ("sql", "accepted", "sql"),  # late callbacks never move a lead backwards
        ("sql", "converted", "customer"),
        ("sql", "opportunity_created", "opportunity"),
        ("opportunity", "meeting_booked", "opportunity"),
        ("opportunity", "converted", "customer"),
        ("customer", "disqualified", "customer"),
        ("sal", "disqualified", "disqualified"),
        ("disqualified", "accepted", "sal"),
        ("recycled", "meeting_booked", "sql"),
    ],
)
def test_sales_touches_move_the_later_stages_forward(current: domain.Stage, touch: str, expected: str) -> None:
    assert domain.stage_after_touch(current, touch) == expected


def test_region_is_derived_from_the_country() -> None:
    assert domain.lead_facts(domain.LeadFields.model_validate({"profile": {"country": "de"}}))["region"] == "emea"
    assert domain.lead_facts(domain.LeadFields.model_validate({"profile": {"country": "BR"}}))["region"] == "latam"
    assert domain.lead_facts(domain.LeadFields.model_validate({"profile": {}}))["region"] is None


def test_differences_describe_a_model_change_in_words() -> None:
    before = domain.score_lead(MODEL, GOOD_FIT, [], T0)
    after = domain.score_lead(MODEL, GOOD_FIT, demo(T0), T0)
    assert domain.differences(before, after) == [
        "becomes an MQL", "tier warm -> hot", "engagement 1 -> 3", "score 61 -> 101"]
