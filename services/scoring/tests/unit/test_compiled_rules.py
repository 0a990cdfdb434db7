"""Compiled rules score exactly as the rules read plainly did.

A model is compiled once (``domain.CompiledModel``; ``StoredModel.compiled`` keeps one per version) so that what
depends only on a condition (its folded value, its number, its folded set, its casefolded text, its limits) is
not worked out again for every lead. These tests hold the compiled form to what scoring did before it:
``REFERENCE`` below is ``condition_holds``, unchanged from then, and the full scores pinned here were written by the
scoring that evaluated every condition per lead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow_scoring import domain
from leadflow_scoring.model import Condition, default_model, validate_model
from leadflow_scoring.store import StoredModel

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DEFAULT = default_model()


# -- conditions ----------------------------------------------------------------------------------
# condition_holds is the condition test as scoring ran it for every lead before conditions were compiled; it
# stays, unchanged, as the compiled tests' fallback, and is the reference they are held to.

REFERENCE = domain.condition_holds

OPS = ["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "exists", "missing", "contains",
       "starts_with", "ends_with", "matches"]
HUGE = 10**400  # a number float() cannot hold (OverflowError)
TOO_LONG_FOR_STR = 10**5000  # an int str() refuses (ValueError: more than 4300 digits)

# Condition values: every kind a model may give, and kinds validation refuses (a rule stored before a check,
# a spec built in code), which must fail, or not, lead by lead as before.
VALUES: list[Any] = [
    "Software", "  SaaS ", "corporate", "CORPORATE", "1,000", "1000", "10.5", " 42 ", "abc", "", "nan", "1e999",
    "Straße", "/pricing", ".EDU", "VP", r"\b(student|intern)", "(", "^white", "12",
    0, 1, 50, 1000, 10.5, -3, 0.0, HUGE, True, False, None,
    [], ["software", " SaaS", "Retail "], ["US", "ca", "GB"], [1000, "1,000", True, None, 10.5], [200, 999],
    [10.5, "20"], ["1,000", 5000], [11], ["a"], [0.0, 0], [[1]], [None], {"key": "value"}, ("x", "y"),
]
# Lead and activity facts: what lead_facts and Activity.facts give (text, numbers, bools, None), and more.
FACT_VALUES: list[Any] = [
    "Software", " software ", "SOFTWARE", "saas", "SaaS", "corporate", "Corporate", "retail", "US", "ca", "de",
    "1,500", "1,000", "999.0", "10.5", "42", "abc", "", " ", "nan", "inf", "STRASSE", "straße",
    "https://x.example/pricing", "https://x.example/careers/jobs", "mit.edu", "Graduate student",
    "white paper", "VP Sales", "vp of marketing", "key",
    0, 1, 11, 50, 200, 999, 1000, 5000, 10.5, 1000.0, -3, 0.0, float("nan"), float("inf"), HUGE, TOO_LONG_FOR_STR,
    True, False, None, [1, 2], [], {"k": "v"},
]


def _outcome(test: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        return ("holds", test(*args))
    except Exception as exc:  # the reference fails for some (invalid) values: the compiled test must fail alike
        return ("raises", type(exc))


def _conditions() -> list[Condition]:
    conditions = [Condition(field="f", op=op, value=value) for op, value in itertools.product(OPS, VALUES)]
    # An operator the schema does not know (a spec built without validation) was a pattern test.
    conditions += [Condition.model_construct(field="f", op="regex", value=value) for value in ("soft", "(", 1)]
    return conditions


def test_every_compiled_condition_agrees_with_the_reference_on_every_fact() -> None:
    conditions = _conditions()
    facts_list: list[dict[str, Any]] = [{}, {"other": "Software"}, *({"f": value} for value in FACT_VALUES)]
    checked = 0
    for cond in conditions:
        compiled = domain.compile_condition(cond)
        for facts in facts_list:
            expected = _outcome(REFERENCE, cond, facts)
            got = _outcome(compiled, facts)
            assert got == expected, (cond.op, cond.value, facts)
            assert _outcome(domain.condition_holds, cond, facts) == expected
            if got[0] == "holds":
                assert type(got[1]) is bool
            checked += 1
    assert checked == len(conditions) * len(facts_list) > 15_000


def test_values_a_condition_cannot_prepare_still_fail_only_for_the_leads_that_reach_them() -> None:
    # A number test against text: no number to compare, so no limit is needed and nothing fails...
    compiled = domain.compile_condition(Condition(field="f", op="gt", value="ten"))
    assert compiled({"f": "not a number"}) is False
    assert compiled({}) is False
    # ...but a lead with a number needs the limit, and that fails as it always did.
    with pytest.raises(ValueError, match="could not convert"):
        compiled({"f": 11})
    # 'between' compares with the low bound first and stops when the lead is below it.
    bounded = domain.compile_condition(Condition(field="f", op="between", value=[10, "high"]))
    assert bounded({"f": 5}) is False
    with pytest.raises(ValueError, match="could not convert"):
        bounded({"f": 15})


def test_rules_test_all_conditions_then_one_of_any_stopping_where_the_answer_is_known() -> None:
    asked: list[str] = []

    class Facts(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            asked.append(key)
            return super().get(key, default)

    def rule(all_: list[tuple[str, str]], any_: list[tuple[str, str]]) -> domain.FactTest:
        return domain.compile_rule([Condition(field=f, op="eq", value=v) for f, v in all_],
                                   [Condition(field=f, op="eq", value=v) for f, v in any_])

    facts = Facts(a="1", b="2", c="3")
    assert rule([("a", "1"), ("b", "x"), ("c", "3")], [])(facts) is False
    assert asked == ["a", "b"]
    asked.clear()
    assert rule([("a", "1")], [("b", "x"), ("c", "3"), ("a", "1")])(facts) is True
    assert asked == ["a", "b", "c"]
    asked.clear()
    assert rule([], [])(facts) is True
    assert rule([], [("a", "x")])(facts) is False
    assert asked == ["a"]


# -- whole models ------------------------------------------------------------------------------


def act(activity_type: str, days_ago: float = 0, page_url: str | None = None, **properties: str) -> domain.Activity:
    return domain.Activity(f"{activity_type}-{days_ago}-{page_url}", activity_type, NOW - timedelta(days=days_ago),
                           page_url, properties)


def fill(form_key: str, days_ago: float = 0) -> domain.Activity:
    return act(domain.FORM_SUBMISSION, days_ago, form_key=form_key)


def facts_of_lead(profile: dict[str, Any], quality: int | None = None, account: dict[str, Any] | None = None,
         **fields: Any) -> dict[str, Any]:
    return domain.lead_facts(domain.LeadFields.model_validate(
        {"form_key": "demo", "profile": profile, "quality": {"score": quality} if quality is not None else None,
         "account": account, **fields}))


# Leads as the bench sends them (job titles, countries, company, industry and size 70% of the time, phone half
# the time, campaign and source) and leads that reach every kind of rule of the shipped model.
DEFAULT_MODEL_LEADS: dict[str, tuple[dict[str, Any], list[domain.Activity]]] = {
    "a CTO at a 420-person software company asking for a demo": (facts_of_lead(
        {"email": "ada.lovelace.bench1@initech.example", "email_domain": "initech.example",
         "email_type": "corporate", "first_name": "Ada", "last_name": "Lovelace", "phone_e164": "+14155550142",
         "company": "Initech", "company_domain": "initech.example", "job_title": "CTO", "seniority": "c_level",
         "function": "engineering", "country": "US", "industry": "Software", "employee_count": 420},
        quality=85, attribution={"utm_campaign": "spring-launch", "utm_source": "google", "utm_medium": "cpc"}),
        [fill("demo")]),
    "a student on a free mailbox in India reading about jobs": (facts_of_lead(
        {"email": "priya.patel@gmail.com", "email_domain": "gmail.com", "email_type": "free",
         "job_title": "Graduate Student", "country": "IN", "industry": "Education", "employee_count": 240},
        quality=55),
        [fill("newsletter", days_ago=45), act("page_view", 5, "https://www.example.com/careers"),
         act("page_view", 4, "https://www.example.com/jobs/123"), act("page_view", 3, "https://www.example.com/blog"),
         act("careers_page_view", 70, "https://www.example.com/careers")]),
    "a competitor by company domain on a free mailbox, fast track blocked": (facts_of_lead(
        {"email_domain": "gmail.com", "email_type": "free", "company_domain": "HubSpot.com", "seniority": "vp",
         "function": "sales", "country": "GB", "industry": "Internet", "employee_count": 25000},
        quality=60),
        [act("demo_requested", 2), fill("demo")]),
    "a role mailbox at a strategic account, a trial and engagement in and out of their windows": (facts_of_lead(
        {"email_domain": "globex.example", "email_type": "corporate", "is_role_address": True,
         "company": "Globex Corporation", "seniority": "director", "country": "de", "annual_revenue": 250_000_000.0},
        quality=95, account={"account_id": "acc-7", "name": "Globex", "method": "domain", "confidence": 1.0,
                             "tier": "Tier1"}),
        [act("trial_started", 10), act("webinar_attended", 100), act("webinar_attended", 130),
         act("pricing_page_view", -1), act("content_download", 29.5), act("email_click", 59.9)]),
    "nothing known, low quality, clicking emails for months": (facts_of_lead({}, quality=10), [
        act("email_click", days) for days in (1, 8, 15, 22, 29, 36, 61, 75)]),
    "a director at a mid-revenue retailer browsing pricing past every cap": (facts_of_lead(
        {"email_type": "corporate", "seniority": "head", "function": "Revenue Operations", "country": "Germany",
         "industry": "Retail", "employee_count": 1200, "annual_revenue": 99_999_999.99},
        quality=80),
        [*(act("page_view", i, f"https://www.example.com/pricing?plan={i}") for i in range(12)),
         *(act("pricing_page_view", 0.5 * i) for i in range(4)), fill("ebook", 2), fill("webinar", 1),
         fill("contact-sales", 95)]),
    "a grade-B manager fast-tracked by a demo form": (facts_of_lead(
        {"email_type": "corporate", "seniority": "manager", "country": "FR", "industry": "Retail",
         "employee_count": 60}, quality=70),
        [fill("demo", 3)]),
    "a grade-B manager fast-tracked by asking sales, a grade-C demo form long ago": (facts_of_lead(
        {"email_type": "corporate", "seniority": "Manager", "country": "fr", "industry": "retail",
         "employee_count": 60}, quality=70),
        [fill("demo", 31), act("contact_requested", 29.9)]),
}

CUSTOM_MODEL = validate_model({
    "name": "every-operator",
    "fit_rules": [
        {"id": "big", "reason": "Big ({value})", "all": [{"field": "employee_count", "op": "gt", "value": 500}],
         "points": 7.25},
        {"id": "small_or_unknown", "reason": "Small or unknown: {value}",
         "any": [{"field": "employee_count", "op": "lte", "value": 50},
                 {"field": "employee_count", "op": "missing"}], "points": 1},
        {"id": "not_retail", "reason": "Not retail ({value})",
         "all": [{"field": "industry", "op": "ne", "value": "retail"}, {"field": "industry", "op": "exists"}],
         "points": 3.33},
        {"id": "elsewhere", "reason": "Outside the core: {value}",
         "all": [{"field": "country", "op": "not_in", "value": ["US", "CA"]}], "points": -2.5},
        {"id": "revenue_band", "reason": "Revenue in band",
         "all": [{"field": "annual_revenue", "op": "between", "value": [1.5e6, 2.5e7]}], "points": 4},
        {"id": "exec_title", "reason": "Executive title: {value}",
         "any": [{"field": "job_title", "op": "starts_with", "value": "vp"},
                 {"field": "job_title", "op": "matches", "value": "chief [a-z]+ officer"}], "points": 9},
        {"id": "launch_in_na", "reason": "Launch campaign in {value}",
         "all": [{"field": "utm_campaign", "op": "contains", "value": "LAUNCH"},
                 {"field": "region", "op": "eq", "value": "north_america"}], "points": 2},
        {"id": "budget", "reason": "Budget {value}",
         "all": [{"field": "custom_fields.budget", "op": "gte", "value": 10000}], "points": 5},
        {"id": "quality_under_50", "reason": "Quality {value}",
         "all": [{"field": "quality.score", "op": "lt", "value": 50}], "points": -1.5},
    ],
    "behavior_rules": [
        {"id": "docs_reader", "reason": "Read the docs", "activity_types": ["page_view"],
         "all": [{"field": "page_url", "op": "ends_with", "value": "/DOCS"}], "points": 2.5, "decays": False},
        {"id": "white_papers", "reason": "Downloaded white papers", "activity_types": ["content_download",
                                                                                       "custom.asset_download"],
         "all": [{"field": "properties.asset", "op": "matches", "value": "^white"}], "points": 6, "cap": 9,
         "window_days": 45},
    ],
    "negative_rules": [
        {"id": "partial", "reason": "Partly enriched", "all": [{"field": "partial", "op": "eq", "value": True}],
         "points": -1},
        {"id": "unsubscribed", "reason": "Unsubscribed", "activity_types": ["custom.unsubscribed"], "points": -20,
         "blocks_mql": True},
        {"id": "no_phone_or_title", "reason": "No way to reach {value}",
         "any": [{"field": "phone_e164", "op": "missing"}, {"field": "job_title", "op": "missing"}],
         "points": -0.25, "blocks_mql": True},
    ],
    "decay": {"half_life_days": 14},
    "fit_grades": {"A": 15, "B": 8, "C": 3},
    "engagement_levels": {"level_4": 12, "level_3": 6, "level_2": 2},
    "mql": {"threshold": 30, "fast_track": [
        {"id": "docs_sprint", "reason": "Reading the docs this week", "activity_types": ["page_view"],
         "all": [{"field": "page_url", "op": "contains", "value": "docs"}], "within_days": 7,
         "min_fit_grade": "C"}]},
    "tiers": [{"tier": "hot", "is_mql": True, "min_engagement": 3}, {"tier": "warm", "min_score": 10}],
})

CUSTOM_MODEL_LEADS: dict[str, tuple[dict[str, Any], list[domain.Activity]]] = {
    "a chief officer with a budget in text reading the docs": (facts_of_lead(
        {"job_title": "Chief Revenue Officer", "phone_e164": "+14155550100", "country": "ca", "industry": "Software",
         "employee_count": 900, "annual_revenue": 2.5e7},
        quality=40, custom_fields={"budget": "12,500"}, attribution={"utm_campaign": "Spring-Launch"}),
        [act("page_view", 1, "https://x.example/docs"), act("page_view", 20, "https://x.example/DOCS"),
         act("content_download", 3, asset="White paper"), act("custom.asset_download", 50, asset="white-2"),
         act("custom.asset_download", 1, asset="whitepaper 3"), act("content_download", 2, asset="case study")]),
    "an unknown-size retailer, unsubscribed, partly enriched": (facts_of_lead(
        {"job_title": "VP of Sales", "country": "FR", "industry": " RETAIL "}, partial=True),
        [act("custom.unsubscribed", 3), act("page_view", 2, "https://x.example/docs/start")]),
    "nothing known": (facts_of_lead({}), []),
    "a VP without a known company, fast-tracked by the docs": (facts_of_lead(
        {"job_title": "VP Product", "phone_e164": "+14155550199", "country": "US", "employee_count": 100}),
        [act("page_view", 2, "https://x.example/docs/intro"), act("page_view", 8, "https://x.example/docs")]),
}

# What the scoring before compiled rules gave these leads: (score, fit points, behavior points, grade,
# engagement, tier, MQL, MQL reason, blocked by, explanation lines as (rule id, category, points, reason)).
Expected = tuple[float, float, float, str, int, str, bool, str | None, tuple[str, ...],
                 list[tuple[str, str, float, str]]]
EXPECTED_DEFAULT: dict[str, Expected] = {
    "a CTO at a 420-person software company asking for a demo": (
        112.0, 72.0, 40.0, "A", 3, "hot", True,
        "score 112 ≥ 80",
        (), [
            ("industry_core", "fit", 15.0, "Core industry: Software"),
            ("size_midmarket", "fit", 15.0, "Mid-market company (420 employees)"),
            ("seniority_executive", "fit", 20.0, "Executive buyer (c_level)"),
            ("function_technical", "fit", 4.0, "Technical evaluator: engineering"),
            ("geo_north_america", "fit", 10.0, "North America (US)"),
            ("corporate_email", "fit", 5.0, "Corporate email address"),
            ("high_data_quality", "fit", 3.0, "Complete, consistent contact data (quality 85)"),
            ("demo_form", "behavior", 40.0, "Requested a demo (1 x form_submission)"),
        ]),
    "a student on a free mailbox in India reading about jobs": (
        -48.7, -25.0, -23.7, "D", 1, "cold", False,
        "blocked by student",
        ("student",), [
            ("size_midmarket", "fit", 15.0, "Mid-market company (240 employees)"),
            ("free_email", "negative", -10.0, "Free email provider"),
            ("student", "negative", -30.0, "Student or academic"),
            ("other_form", "behavior", 10.0, "Filled in a form (1 x form_submission)"),
            ("page_views", "behavior", 3.0, "Browsed the website (3 x page_view)"),
            ("job_seeker", "negative", -30.0, "Looking at jobs, not buying (2 x page_view)"),
            ("decay", "decay", -6.7, "behavioral points fade with a 30-day half-life"),
        ]),
    "a competitor by company domain on a free mailbox, fast track blocked": (
        37.2, -41.0, 78.2, "D", 4, "cold", False,
        "blocked by competitor",
        ("competitor",), [
            ("industry_core", "fit", 15.0, "Core industry: Internet"),
            ("size_enterprise", "fit", 20.0, "Enterprise company (25000 employees)"),
            ("seniority_executive", "fit", 20.0, "Executive buyer (vp)"),
            ("function_buyer", "fit", 8.0, "Buying function: sales"),
            ("geo_europe", "fit", 6.0, "Served European market (GB)"),
            ("free_email", "negative", -10.0, "Free email provider"),
            ("competitor", "negative", -100.0, "Works for a competitor (gmail.com)"),
            ("demo_form", "behavior", 40.0, "Requested a demo (1 x form_submission)"),
            ("demo_request", "behavior", 40.0, "Requested a demo (1 x demo_requested)"),
            ("decay", "decay", -1.8, "behavioral points fade with a 30-day half-life"),
        ]),
    "a role mailbox at a strategic account, a trial and engagement in and out of their windows": (
        80.1, 46.0, 34.1, "B", 3, "hot", True,
        "score 80.1 ≥ 80",
        (), [
            ("revenue_100m_plus", "fit", 10.0, "Annual revenue of $100M or more"),
            ("seniority_director", "fit", 12.0, "Director-level (director)"),
            ("geo_europe", "fit", 6.0, "Served European market (de)"),
            ("corporate_email", "fit", 5.0, "Corporate email address"),
            ("high_data_quality", "fit", 3.0, "Complete, consistent contact data (quality 95)"),
            ("known_account", "fit", 5.0, "Matches a known account: Globex"),
            ("strategic_account", "fit", 10.0, "Strategic/enterprise account tier (Tier1)"),
            ("role_address", "negative", -5.0, "Shared role mailbox (info@, sales@, ...)"),
            ("free_trial", "behavior", 35.0, "Started a free trial (1 x trial_started)"),
            ("webinar_attended", "behavior", 15.0, "Attended a webinar (1 x webinar_attended)"),
            ("content_download", "behavior", 8.0, "Downloaded content (1 x content_download)"),
            ("email_click", "behavior", 3.0, "Clicked a marketing email (1 x email_click)"),
            ("decay", "decay", -26.9, "behavioral points fade with a 30-day half-life"),
        ]),
    "nothing known, low quality, clicking emails for months": (
        2.0, -10.0, 12.0, "D", 2, "cold", False,
        None,
        (), [
            ("low_data_quality", "negative", -10.0, "Sparse or inconsistent contact data (quality 10)"),
            ("email_click", "behavior", 12.0, "Clicked a marketing email (6 x email_click), capped at 12"),
        ]),
    "a director at a mid-revenue retailer browsing pricing past every cap": (
        150.3, 61.0, 89.3, "A", 4, "hot", True,
        "score 150.3 ≥ 80",
        (), [
            ("industry_adjacent", "fit", 8.0, "Adjacent industry: Retail"),
            ("size_enterprise", "fit", 20.0, "Enterprise company (1200 employees)"),
            ("revenue_10m_100m", "fit", 5.0, "Annual revenue between $10M and $100M"),
            ("seniority_director", "fit", 12.0, "Director-level (head)"),
            ("function_buyer", "fit", 8.0, "Buying function: Revenue Operations"),
            ("corporate_email", "fit", 5.0, "Corporate email address"),
            ("high_data_quality", "fit", 3.0, "Complete, consistent contact data (quality 80)"),
            ("other_form", "behavior", 20.0, "Filled in a form (2 x form_submission)"),
            ("pricing_page", "behavior", 30.0, "Viewed pricing (4 x pricing_page_view), capped at 30"),
            ("pricing_page_url", "behavior", 30.0, "Viewed a pricing page (12 x page_view), capped at 30"),
            ("page_views", "behavior", 10.0, "Browsed the website (12 x page_view), capped at 10"),
            ("decay", "decay", -0.7, "behavioral points fade with a 30-day half-life"),
        ]),
    "a grade-B manager fast-tracked by a demo form": (
        72.3, 35.0, 37.3, "B", 3, "hot", True,
        "Filled in the demo form in the last 30 days with fit B or better",
        (), [
            ("industry_adjacent", "fit", 8.0, "Adjacent industry: Retail"),
            ("size_growth", "fit", 10.0, "Growth-stage company (60 employees)"),
            ("seniority_manager", "fit", 6.0, "Manager-level (manager)"),
            ("geo_europe", "fit", 6.0, "Served European market (FR)"),
            ("corporate_email", "fit", 5.0, "Corporate email address"),
            ("demo_form", "behavior", 40.0, "Requested a demo (1 x form_submission)"),
            ("decay", "decay", -2.7, "behavioral points fade with a 30-day half-life"),
        ]),
    "a grade-B manager fast-tracked by asking sales, a grade-C demo form long ago": (
        74.6, 35.0, 39.6, "B", 3, "hot", True,
        "Asked for a demo, a trial or sales in the last 30 days with fit B or better",
        (), [
            ("industry_adjacent", "fit", 8.0, "Adjacent industry: retail"),
            ("size_growth", "fit", 10.0, "Growth-stage company (60 employees)"),
            ("seniority_manager", "fit", 6.0, "Manager-level (Manager)"),
            ("geo_europe", "fit", 6.0, "Served European market (fr)"),
            ("corporate_email", "fit", 5.0, "Corporate email address"),
            ("demo_form", "behavior", 40.0, "Requested a demo (1 x form_submission)"),
            ("demo_request", "behavior", 40.0, "Requested a demo (1 x contact_requested)"),
            ("decay", "decay", -40.4, "behavioral points fade with a 30-day half-life"),
        ]),
}
EXPECTED_CUSTOM: dict[str, Expected] = {
    "a chief officer with a budget in text reading the docs": (
        43.0, 29.0, 14.0, "A", 4, "hot", True,
        "score 43 ≥ 30",
        (), [
            ("big", "fit", 7.2, "Big (900)"),
            ("not_retail", "fit", 3.3, "Not retail (Software)"),
            ("revenue_band", "fit", 4.0, "Revenue in band"),
            ("exec_title", "fit", 9.0, "Executive title: Chief Revenue Officer"),
            ("launch_in_na", "fit", 2.0, "Launch campaign in Spring-Launch"),
            ("budget", "fit", 5.0, "Budget 12,500"),
            ("quality_under_50", "fit", -1.5, "Quality 40"),
            ("docs_reader", "behavior", 5.0, "Read the docs (2 x page_view)"),
            ("white_papers", "behavior", 9.0, "Downloaded white papers (1 x content_download, 1 x "
                                              "custom.asset_download), capped at 9"),
        ]),
    "an unknown-size retailer, unsubscribed, partly enriched": (
        -13.7, 6.3, -20.0, "C", 1, "cold", False,
        "blocked by unsubscribed, no_phone_or_title",
        ("unsubscribed", "no_phone_or_title"), [
            ("small_or_unknown", "fit", 1.0, "Small or unknown: unknown"),
            ("elsewhere", "fit", -2.5, "Outside the core: FR"),
            ("exec_title", "fit", 9.0, "Executive title: VP of Sales"),
            ("partial", "negative", -1.0, "Partly enriched"),
            ("no_phone_or_title", "negative", -0.2, "No way to reach unknown"),
            ("unsubscribed", "negative", -20.0, "Unsubscribed (1 x custom.unsubscribed)"),
        ]),
    "nothing known": (
        -1.7, -1.7, 0.0, "D", 1, "cold", False,
        "blocked by no_phone_or_title",
        ("no_phone_or_title",), [
            ("small_or_unknown", "fit", 1.0, "Small or unknown: unknown"),
            ("elsewhere", "fit", -2.5, "Outside the core: unknown"),
            ("no_phone_or_title", "negative", -0.2, "No way to reach unknown"),
        ]),
    "a VP without a known company, fast-tracked by the docs": (
        11.5, 9.0, 2.5, "B", 2, "warm", True,
        "Reading the docs this week",
        (), [
            ("exec_title", "fit", 9.0, "Executive title: VP Product"),
            ("docs_reader", "behavior", 2.5, "Read the docs (1 x page_view)"),
        ]),
}


def _as_expected(result: domain.ScoreResult) -> Expected:
    return (result.score, result.fit_points, result.behavior_points, result.fit_grade, result.engagement_level,
            result.tier, result.is_mql, result.mql_reason, result.mql_blocked_by,
            [(line.rule_id, line.category, line.points, line.reason) for line in result.lines])


@pytest.mark.parametrize("name", list(DEFAULT_MODEL_LEADS))
def test_the_default_model_scores_and_explains_leads_as_before(name: str) -> None:
    facts, activities = DEFAULT_MODEL_LEADS[name]
    assert _as_expected(domain.score_lead(DEFAULT, facts, activities, NOW)) == EXPECTED_DEFAULT[name]


@pytest.mark.parametrize("name", list(CUSTOM_MODEL_LEADS))
def test_a_model_using_every_operator_scores_and_explains_leads_as_before(name: str) -> None:
    facts, activities = CUSTOM_MODEL_LEADS[name]
    assert _as_expected(domain.score_lead(CUSTOM_MODEL, facts, activities, NOW)) == EXPECTED_CUSTOM[name]


def test_a_stored_model_version_is_compiled_once() -> None:
    stored = StoredModel("b2b-saas-default.v1", 1, DEFAULT.name, DEFAULT)
    assert stored.compiled is stored.compiled
    facts, activities = DEFAULT_MODEL_LEADS["a CTO at a 420-person software company asking for a demo"]
    assert stored.compiled.score(facts, activities, NOW) == domain.score_lead(DEFAULT, facts, activities, NOW)
    # Another version is another model: its own compiled form, never the first one's.
    other = StoredModel("every-operator.v2", 2, CUSTOM_MODEL.name, CUSTOM_MODEL)
    assert other.compiled is not stored.compiled
    assert other.compiled.score(facts, activities, NOW) == domain.score_lead(CUSTOM_MODEL, facts, activities, NOW)
