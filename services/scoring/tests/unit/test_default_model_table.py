"""The shipped default model on a table of sample leads: score, grade, engagement, tier, MQL, explanation.

Each row is a lead as enrichment describes it plus what it did; the expected explanation lists every
rule that fired with its points (behavior at face value, capped; 'decay' is what the 30-day half-life
took away), and the lines must add up to the score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow_contracts.activities import ACTIVITY_TYPES, INTERNAL_ACTIVITY_TYPES
from leadflow_scoring import domain
from leadflow_scoring.model import default_model

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MODEL = default_model()

# Fit 61 (grade A): a director of sales at a 300-person UK SaaS company with a corporate email.
UK_SAAS_DIRECTOR = {"industry": "SaaS", "employee_count": 300, "seniority": "director", "function": "sales",
                    "country": "GB", "email_type": "corporate"}
UK_SAAS_DIRECTOR_FIT = {"industry_core": 15, "size_midmarket": 15, "seniority_director": 12, "function_buyer": 8,
                        "geo_europe": 6, "corporate_email": 5}
# Fit exactly 35 (grade B): a manager (function unknown) at a 60-person French retailer.
FR_RETAIL_MANAGER = {"industry": "Retail", "employee_count": 60, "seniority": "manager", "country": "FR",
                     "email_type": "corporate"}
FR_RETAIL_MANAGER_FIT = {"industry_adjacent": 8, "size_growth": 10, "seniority_manager": 6, "geo_europe": 6,
                         "corporate_email": 5}
# Fit 25 (grade C): a US software company, nothing else known.
US_SOFTWARE = {"industry": "software", "country": "US"}
US_SOFTWARE_FIT = {"industry_core": 15, "geo_north_america": 10}


def act(activity_type: str, days_ago: float = 0, page_url: str | None = None, **properties: str) -> domain.Activity:
    return domain.Activity(f"{activity_type}-{days_ago}-{page_url}-{id(properties)}", activity_type,
                           NOW - timedelta(days=days_ago), page_url, properties)


def fill(form_key: str, days_ago: float = 0) -> domain.Activity:
    return act(domain.FORM_SUBMISSION, days_ago, form_key=form_key)


def many(n: int, activity_type: str, days_ago: float = 0, page_url: str | None = None) -> list[domain.Activity]:
    return [domain.Activity(f"{activity_type}-{i}", activity_type, NOW - timedelta(days=days_ago), page_url)
            for i in range(n)]


@dataclass
class Row:
    name: str
    profile: dict[str, Any]
    activities: list[domain.Activity]
    score: float
    grade: str
    engagement: int
    tier: str
    mql: bool
    explanation: dict[str, float]
    quality: int = 70
    account: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


ROWS = [
    Row("ideal enterprise buyer asking for a demo",
        {"industry": "Software", "employee_count": 5000, "annual_revenue": 500_000_000, "seniority": "vp",
         "function": "marketing", "country": "US", "email_type": "corporate"},
        [fill("demo")], 146, "A", 3, "hot", True,
        {"industry_core": 15, "size_enterprise": 20, "revenue_100m_plus": 10, "seniority_executive": 20,
         "function_buyer": 8, "geo_north_america": 10, "corporate_email": 5, "high_data_quality": 3,
         "known_account": 5, "strategic_account": 10, "demo_form": 40},
        quality=90, account={"account_id": "acc-1", "name": "Acme", "method": "domain", "confidence": 1.0,
                             "tier": "strategic"}),
    Row("good fit, newsletter sign-up only", UK_SAAS_DIRECTOR, [fill("newsletter")], 71, "A", 2, "warm", False,
        {**UK_SAAS_DIRECTOR_FIT, "other_form": 10}),
    Row("good fit asking for a demo", UK_SAAS_DIRECTOR, [fill("demo")], 101, "A", 3, "hot", True,
        {**UK_SAAS_DIRECTOR_FIT, "demo_form": 40}),
    Row("grade B at the boundary, demo fast-tracks to MQL under the threshold", FR_RETAIL_MANAGER, [fill("demo")],
        75, "B", 3, "hot", True, {**FR_RETAIL_MANAGER_FIT, "demo_form": 40}),
    Row("grade C demo request is not fast-tracked",
        {"employee_count": 30, "seniority": "manager", "country": "US", "email_type": "corporate"},
        [fill("demo")], 65, "C", 3, "warm", False,
        {"size_small": 4, "seniority_manager": 6, "geo_north_america": 10, "corporate_email": 5, "demo_form": 40}),
    Row("student on a free mailbox",
        {"email_type": "free", "job_title": "Graduate student", "seniority": "student", "country": "IN"},
        [fill("newsletter")], -30, "D", 2, "cold", False, {"free_email": -10, "student": -30, "other_form": 10}),
    Row("competitor asking for a demo is blocked",
        {"industry": "Software", "employee_count": 5000, "seniority": "director", "function": "marketing",
         "country": "US", "email_type": "corporate", "email_domain": "hubspot.com", "company_domain": "hubspot.com"},
        [fill("demo")], 10, "D", 3, "cold", False,
        {"industry_core": 15, "size_enterprise": 20, "seniority_director": 12, "function_buyer": 8,
         "geo_north_america": 10, "corporate_email": 5, "competitor": -100, "demo_form": 40}),
    Row("disposable email never qualifies", {"industry": "software", "country": "US", "email_type": "disposable"},
        [fill("demo")], 25, "D", 3, "cold", False,
        {**US_SOFTWARE_FIT, "disposable_email": -40, "demo_form": 40}),
    Row("invalid email", {"email_type": "invalid"}, [fill("newsletter")], -40, "D", 2, "cold", False,
        {"invalid_email": -50, "other_form": 10}),
    Row("role mailbox",
        {"industry": "software", "employee_count": 250, "country": "CA", "email_type": "corporate",
         "is_role_address": True},
        [fill("newsletter")], 50, "B", 2, "warm", False,
        {"industry_core": 15, "size_midmarket": 15, "geo_north_america": 10, "corporate_email": 5,
         "role_address": -5, "other_form": 10}),
    Row("sparse data", {}, [fill("newsletter")], 0, "D", 2, "cold", False,
        {"low_data_quality": -10, "other_form": 10}, quality=20),
    Row("nothing known, nothing done", {}, [], 0, "D", 1, "cold", False, {}, quality=50),
    Row("pricing views are capped", UK_SAAS_DIRECTOR, many(5, "pricing_page_view"), 91, "A", 3, "hot", True,
        {**UK_SAAS_DIRECTOR_FIT, "pricing_page": 30}),
    Row("page views are capped", US_SOFTWARE, many(15, "page_view", page_url="https://x.example/blog"),
        35, "C", 2, "cold", False, {**US_SOFTWARE_FIT, "page_views": 10}),
    Row("a pricing page view counts as pricing and as browsing", US_SOFTWARE,
        many(2, "page_view", page_url="https://x.example/pricing"), 47, "C", 2, "cold", False,
        {**US_SOFTWARE_FIT, "pricing_page_url": 20, "page_views": 2}),
    Row("job seeker loses points, capped", US_SOFTWARE, many(3, "page_view", page_url="https://x.example/careers"),
        -2, "C", 1, "cold", False, {**US_SOFTWARE_FIT, "page_views": 3, "job_seeker": -30}),
    Row("webinar and content engagement", UK_SAAS_DIRECTOR,
        [act("webinar_registered"), act("webinar_attended"), *many(2, "content_download"), *many(2, "email_click")],
        106, "A", 3, "hot", True,
        {**UK_SAAS_DIRECTOR_FIT, "webinar_registered": 8, "webinar_attended": 15, "content_download": 16,
         "email_click": 6}),
    Row("very engaged but no fit is not an MQL", {},
        [act("demo_requested"), *many(3, "pricing_page_view"), *many(3, "content_download")],
        94, "D", 4, "warm", False, {"demo_request": 40, "pricing_page": 30, "content_download": 24}, quality=50),
    Row("grade C reaches MQL by the threshold, warm", US_SOFTWARE,
        [act("demo_requested"), *many(3, "pricing_page_view")], 95, "C", 4, "warm", True,
        {**US_SOFTWARE_FIT, "demo_request": 40, "pricing_page": 30}),
    Row("free trial fast-tracks a grade B lead", FR_RETAIL_MANAGER, [act("trial_started")], 70, "B", 3, "hot",
        True, {**FR_RETAIL_MANAGER_FIT, "free_trial": 35}),
    Row("a 40-day-old demo request has faded and is past the fast-track window", FR_RETAIL_MANAGER,
        [fill("demo", days_ago=40)], 50.9, "B", 2, "warm", False,
        {**FR_RETAIL_MANAGER_FIT, "demo_form": 40, "decay": -24.1}),
    Row("a demo request outside the 90-day window counts for nothing", FR_RETAIL_MANAGER,
        [fill("demo", days_ago=100)], 35, "B", 1, "cold", False, FR_RETAIL_MANAGER_FIT),
    Row("one half-life halves the points", UK_SAAS_DIRECTOR, [act("demo_requested", days_ago=30)], 81, "A", 2, "hot",
        True, {**UK_SAAS_DIRECTOR_FIT, "demo_request": 40, "decay": -20}),
    Row("APAC telecom manager",
        {"industry": "Telecommunications", "employee_count": 700, "seniority": "manager", "function": "data",
         "country": "AU", "email_type": "corporate"},
        [fill("newsletter")], 52, "B", 2, "warm", False,
        {"industry_adjacent": 8, "size_midmarket": 15, "seniority_manager": 6, "function_technical": 4,
         "geo_apac": 4, "corporate_email": 5, "other_form": 10}),
    Row("mid revenue band",
        {"industry": "Consulting", "annual_revenue": 50_000_000, "employee_count": 40, "seniority": "director",
         "country": "NL", "email_type": "corporate"},
        [], 43, "B", 1, "cold", False,
        {"industry_adjacent": 8, "revenue_10m_100m": 5, "size_small": 4, "seniority_director": 12,
         "geo_europe": 6, "corporate_email": 5, "high_data_quality": 3}, quality=85),
    Row("a strategic account alone is grade C", {}, [], 15, "C", 1, "cold", False,
        {"known_account": 5, "strategic_account": 10}, quality=50,
        account={"account_id": "acc-9", "name": "Globex", "method": "fuzzy_name", "confidence": 0.9,
                 "tier": "Enterprise"}),
    Row("grade A exactly at its boundary",
        {"industry": "software", "employee_count": 1000, "seniority": "director", "email_type": "corporate"},
        [], 55, "A", 1, "warm", False,
        {"industry_core": 15, "size_enterprise": 20, "seniority_director": 12, "corporate_email": 5,
         "high_data_quality": 3}, quality=80),
    Row("two points short of MQL", UK_SAAS_DIRECTOR, [act("webinar_registered"), *many(3, "email_click")],
        78, "A", 2, "warm", False, {**UK_SAAS_DIRECTOR_FIT, "webinar_registered": 8, "email_click": 9}),
    Row("exactly at the MQL threshold", UK_SAAS_DIRECTOR, [*many(2, "content_download"), act("email_click")],
        80, "A", 2, "hot", True, {**UK_SAAS_DIRECTOR_FIT, "content_download": 16, "email_click": 3}),
    Row("free mailbox does not stop a strong buyer",
        {"industry": "software", "employee_count": 150, "seniority": "vp", "function": "sales", "country": "ES",
         "email_type": "free"},
        [fill("demo")], 89, "B", 3, "hot", True,
        {"free_email": -10, "industry_core": 15, "size_growth": 10, "seniority_executive": 20, "function_buyer": 8,
         "geo_europe": 6, "demo_form": 40}),
    Row("several non-demo forms are capped", US_SOFTWARE, [fill("ebook"), fill("webinar"), fill("newsletter")],
        45, "C", 2, "cold", False, {**US_SOFTWARE_FIT, "other_form": 20}),
    Row("decay across rules: engagement 4 after a 10-day-old demo and fresh pricing views", UK_SAAS_DIRECTOR,
        [act("demo_requested", days_ago=10), *many(3, "pricing_page_view")], 122.7, "A", 4, "hot", True,
        {**UK_SAAS_DIRECTOR_FIT, "demo_request": 40, "pricing_page": 30, "decay": -8.3}),
    Row("text comparisons ignore case", {"industry": "SOFTWARE", "country": "ca", "seniority": "VP"}, [],
        45, "B", 1, "cold", False, {"industry_core": 15, "geo_north_america": 10, "seniority_executive": 20}),
]


def enriched_payload(row: Row) -> domain.LeadFields:
    return domain.LeadFields.model_validate({"lead_id": "l", "form_key": "demo", "profile": row.profile,
                                             "quality": {"score": row.quality}, "account": row.account, **row.extra})


def test_the_table_has_at_least_thirty_leads() -> None:
    assert len(ROWS) >= 30
    assert len({row.name for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_default_model_scores_sample_lead(row: Row) -> None:
    result = domain.score_lead(MODEL, domain.lead_facts(enriched_payload(row)), row.activities, NOW)

    explanation = {line.rule_id: line.points for line in result.lines}
    assert explanation == row.explanation
    assert result.score == pytest.approx(row.score)
    assert sum(line.points for line in result.lines) == pytest.approx(result.score)
    assert (result.fit_grade, result.engagement_level, result.tier, result.is_mql) == (
        row.grade, row.engagement, row.tier, row.mql
    )
    assert all(line.reason for line in result.lines)


def test_reasons_name_the_value_and_count_the_activities() -> None:
    row = ROWS[0]
    result = domain.score_lead(MODEL, domain.lead_facts(enriched_payload(row)), row.activities, NOW)
    reasons = {line.rule_id: line.reason for line in result.lines}
    assert reasons["industry_core"] == "Core industry: Software"
    assert reasons["size_enterprise"] == "Enterprise company (5000 employees)"
    assert reasons["demo_form"] == "Requested a demo (1 x form_submission)"

    capped = next(r for r in ROWS if r.name == "pricing views are capped")
    lines = domain.score_lead(MODEL, domain.lead_facts(enriched_payload(capped)), capped.activities, NOW).lines
    assert {line.rule_id: line.reason for line in lines}["pricing_page"] == (
        "Viewed pricing (5 x pricing_page_view), capped at 30"
    )


def test_blocked_mql_says_which_rule_blocked_it() -> None:
    competitor = next(r for r in ROWS if r.name.startswith("competitor"))
    result = domain.score_lead(MODEL, domain.lead_facts(enriched_payload(competitor)), competitor.activities, NOW)
    assert result.mql_blocked_by == ("competitor",)
    assert result.mql_reason == "blocked by competitor"


@pytest.mark.parametrize("activity_type", [t for t in ACTIVITY_TYPES if t not in INTERNAL_ACTIVITY_TYPES])
def test_the_default_model_credits_every_documented_activity_type(activity_type: str) -> None:
    facts = domain.lead_facts(domain.LeadFields.model_validate(
        {"lead_id": "l", "form_key": "demo", "profile": US_SOFTWARE, "quality": {"score": 70}}))
    # A careers page counts against the lead only under /careers; a plain page view counts anywhere.
    url = "/careers" if activity_type == "careers_page_view" else "/product"
    result = domain.score_lead(MODEL, facts, [act(activity_type, page_url=url)], NOW)
    assert any(f"x {activity_type}" in line.reason for line in result.lines), [line.reason for line in result.lines]
