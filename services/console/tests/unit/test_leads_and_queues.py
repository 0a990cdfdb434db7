"""The leads and queues pages in-process, over stand-in services (httpx.MockTransport): who may search and
open which lead, what the lead page shows, what claim and reassign ask routing for, and a service that is
down or refuses shown as a message, never a 500."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from leadflow_console.auth import User
from leadflow_console.formatting import duration
from leadflow_console.pages.leads import search_scope

ADMIN = User("u1", "admin", "Admin", "admin")
OPS = User("u2", "ops", "Ops", "marketing_ops")
MANAGER = User("u3", "mia", "Mia", "sales_manager", team_ids=("emea",))
REP = User("u4", "bob", "Bob", "rep", rep_id="rep-bob")
OTHER_REP = User("u5", "ann", "Ann", "rep", rep_id="rep-ann")
LEAD = "11111111-2222-3333-4444-555555555555"

ASSIGNMENT = {
    "lead_id": LEAD, "status": "assigned", "owner": {"rep_id": "rep-bob", "name": "Bob Rep", "team_id": "emea"},
    "team_id": "emea", "queue": None, "reason": "rule emea → team emea (round_robin)", "rule_id": "emea",
    "strategy": "round_robin", "history": [{
        "assignment_id": "asg_1", "at": "2026-12-03T08:59:00Z", "outcome": "assigned", "rep_id": "rep-bob",
        "team_id": "emea", "queue": None, "reason": "rule emea → team emea (round_robin)", "rule_id": "emea",
        "ruleset_version": 3, "strategy": "round_robin", "escalated": False,
        "audit": {"rules": [{"rule_id": "emea", "matched": True, "conditions": [
            {"field": "country", "op": "in", "value": ["GB", "DE"], "actual": "GB", "passed": True}]}],
            "candidates": [{"rep_id": "rep-ann", "skipped": "out_of_office"}, {"rep_id": "rep-bob", "skipped": None}],
            "chosen_rep_id": "rep-bob"}}],
}
TIMELINE = {
    "lead_id": LEAD,
    "stages": [{"stage": "captured", "event_type": "lead.captured.v1", "event_id": "e1", "source": "capture",
                "at": "2026-12-03T08:58:59Z", "since_capture_ms": 0.0, "details": {"form_key": "demo"}},
               {"stage": "routed", "event_type": "lead.routed.v1", "event_id": "e2", "source": "routing",
                "at": "2026-12-03T08:59:00Z", "since_capture_ms": 1000.0, "since_previous_ms": 1000.0,
                "details": {"owner_rep_id": "rep-bob"}}],
    "owner_changes": [], "webhooks": [],
    "sla": {"state": "running", "breach_count": 0, "current": {
        "status": "open", "owner_rep_id": "rep-bob", "policy_id": "default-hot", "target_seconds": 300,
        "due_at": "2026-12-03T09:04:10Z"}, "clocks": []},
    "funnel": {},
}
PROFILE = {"lead_id": LEAD, "form_key": "demo", "profile": {"email": "ada@acme.example", "first_name": "Ada",
                                                             "last_name": "Park", "company": "Acme"},
           "quality": {"score": 70, "reasons": ["phone missing"]}, "partial": False, "partial_reasons": [],
           "fill_count": 1, "account": None}
SCORE = {"lead_id": LEAD, "lifecycle_stage": "mql", "current": {
    "score": 62.0, "tier": "warm", "fit_grade": "B", "engagement_level": 1, "is_mql": True, "mql_reason": "score ≥ 50",
    "model_version": "default.v1", "breakdown": [
        {"rule_id": "fit.seniority.vp", "category": "fit", "points": 15.0, "reason": "seniority is vp"}]}}
DELIVERIES = [{"webhook_id": "msg_1", "subscription_id": "sub_1", "event_type": "lead.routed", "lead_id": LEAD,
               "status": "dead", "attempts": 3, "replays": 0, "last_status_code": 500, "last_error": "HTTP 500",
               "created_at": "2026-12-03T08:59:01Z"}]
REPS = [{"id": "rep-bob", "name": "Bob Rep", "team_id": "emea", "active": True},
        {"id": "rep-ann", "name": "Ann Rep", "team_id": "amer", "active": True}]
QUEUE_PAGE = {"queue": "triage", "waiting": 1, "next_cursor": None, "leads": [
    {"lead_id": LEAD, "queued_at": "2026-12-03T08:40:00Z", "age_seconds": 1200.0, "team_id": "emea", "tier": "hot",
     "score": 80.0, "company": "Acme", "sla": {"state": "warned", "due_at": "2026-12-03T09:10:00Z",
                                               "breach_count": 0}}]}


class Services:
    """The five services as one stand-in: canned answers by path, every request kept."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: dict[str, Callable[[httpx.Request], httpx.Response]] = {
            "/v1/leads": lambda r: httpx.Response(200, json={"leads": [], "next_cursor": None}),
            f"/v1/leads/{LEAD}/assignment": lambda r: httpx.Response(200, json=ASSIGNMENT),
            f"/v1/leads/{LEAD}/timeline": lambda r: httpx.Response(200, json=TIMELINE),
            f"/v1/leads/{LEAD}": lambda r: httpx.Response(200, json=PROFILE),
            f"/v1/leads/{LEAD}/score": lambda r: httpx.Response(200, json=SCORE),
            "/v1/admin/webhooks/deliveries": lambda r: httpx.Response(200, json=DELIVERIES),
            "/v1/admin/webhooks/deliveries/msg_1": lambda r: httpx.Response(200, json=DELIVERIES[0]),
            "/v1/admin/webhooks/deliveries/msg_1/replay": lambda r: httpx.Response(202, json=DELIVERIES[0]),
            "/v1/admin/reps": lambda r: httpx.Response(200, json=REPS),
            "/v1/admin/queues": lambda r: httpx.Response(200, json=[
                {"id": "triage", "name": "Triage", "description": None, "waiting": 1}]),
            "/v1/queues/triage/leads": lambda r: httpx.Response(200, json=QUEUE_PAGE),
            f"/v1/leads/{LEAD}/claim": lambda r: httpx.Response(200, json={}),
            f"/v1/leads/{LEAD}/reassign": lambda r: httpx.Response(200, json={}),
        }

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.get(request.url.path)
        return answer(request) if answer else httpx.Response(404, json={"detail": "not found"})

    def sent(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
def as_user(services: Services, page_client: Any) -> Callable[[User], Any]:
    return lambda user: page_client(user, services.handle)


def test_a_rep_searches_their_own_leads_a_manager_one_of_their_teams():
    assert search_scope(REP, None).forced == {"owner": "rep-bob"}
    assert search_scope(User("u6", "new", "New", "rep"), None).refusal
    assert search_scope(MANAGER, "amer").forced == {"team": "emea"}
    assert search_scope(User("u7", "m2", "M2", "sales_manager", team_ids=("a", "b")), "b").forced == {"team": "b"}
    assert search_scope(OPS, "amer").forced == {}


async def test_the_search_passes_the_filters_and_forces_a_reps_owner(as_user: Any, services: Services):
    async with as_user(REP) as client:
        page = await client.get("/leads", params={"email": "ada@acme.example", "owner": "rep-ann", "tier": "hot",
                                                  "captured_from": "2026-12-01", "company": ""})
    assert page.status_code == 200, page.text
    params = services.sent("GET", "/v1/leads")[-1].url.params
    assert params["owner"] == "rep-bob" and params["email"] == "ada@acme.example" and params["tier"] == "hot"
    assert params["captured_from"] == "2026-12-01" and "company" not in params


async def test_a_refused_filter_is_shown_next_to_its_field(as_user: Any, services: Services):
    services.answers["/v1/leads"] = lambda r: httpx.Response(422, json={
        "detail": "The request is invalid; see errors.",
        "errors": [{"field": "email", "code": "invalid", "message": "not an email address"}]})
    async with as_user(OPS) as client:
        page = await client.get("/leads", params={"email": "nobody", "stage": "nowhere"})
        assert page.status_code == 422
        assert 'id="e-stage"' in page.text and not services.sent("GET", "/v1/leads")
        page = await client.get("/leads", params={"email": "nobody"})
    assert page.status_code == 422
    assert re.search(r'id="e-email">not an email address<', page.text)


async def test_the_lead_page_shows_journey_profile_score_routing_clock_and_webhooks(as_user: Any):
    async with as_user(ADMIN) as client:
        page = await client.get(f"/leads/{LEAD}")
    assert page.status_code == 200, page.text
    text = page.text
    for shown in ("Ada Park", "captured", "routed", "phone missing", "fit.seniority.vp", "+15.0",
                  "country in [&#39;GB&#39;, &#39;DE&#39;]", "skipped: out of office", "Time left",
                  "4 min 10 s", "msg_1", "HTTP 500", "Replay", "Reassign"):
        assert shown in text, shown


async def test_a_rep_gets_a_404_for_another_reps_lead_and_no_actions_on_their_own(as_user: Any):
    async with as_user(OTHER_REP) as client:
        assert (await client.get(f"/leads/{LEAD}")).status_code == 404
        assert (await client.get(f"/leads/{LEAD}/sla")).status_code == 404
    async with as_user(REP) as client:
        page = await client.get(f"/leads/{LEAD}")
        assert page.status_code == 200
        assert "Reassign" not in page.text and "Replay" not in page.text
        assert (await client.post(f"/leads/{LEAD}/reassign", data={"target": "queue:triage", "reason": "x"})
                ).status_code == 403


async def test_a_service_down_is_a_message_on_its_part_of_the_lead_page(as_user: Any, services: Services):
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    services.answers[f"/v1/leads/{LEAD}/score"] = down
    async with as_user(ADMIN) as client:
        page = await client.get(f"/leads/{LEAD}")
    assert page.status_code == 200
    assert "scoring is unavailable" in page.text and "phone missing" in page.text


async def test_a_manager_reassigns_only_to_their_teams_reps_and_routing_is_asked_with_the_reason(
        as_user: Any, services: Services):
    async with as_user(MANAGER) as client:
        refused = await client.post(f"/leads/{LEAD}/reassign", data={"target": "rep:rep-ann", "reason": "cover"})
        assert refused.status_code == 422 and "reps of your teams" in refused.text
        assert not services.sent("POST", f"/v1/leads/{LEAD}/reassign")
        done = await client.post(f"/leads/{LEAD}/reassign", data={"target": "queue:triage", "reason": " triage "})
    assert done.status_code == 303 and done.headers["location"] == f"/leads/{LEAD}"
    assert json.loads(services.sent("POST", f"/v1/leads/{LEAD}/reassign")[-1].content) == {
        "queue": "triage", "reason": "triage"}


async def test_a_routing_refusal_of_a_reassign_is_shown_next_to_the_target(as_user: Any, services: Services):
    services.answers[f"/v1/leads/{LEAD}/reassign"] = lambda r: httpx.Response(409, json={
        "detail": "lead is already in queue triage"})
    async with as_user(ADMIN) as client:
        page = await client.post(f"/leads/{LEAD}/reassign", data={"target": "queue:triage", "reason": "again"})
    assert page.status_code == 422
    assert 'id="reassign-target-error">lead is already in queue triage<' in page.text


async def test_only_an_admin_replays_a_webhook_and_only_one_of_this_lead(as_user: Any, services: Services):
    async with as_user(MANAGER) as client:
        assert (await client.post(f"/leads/{LEAD}/webhooks/msg_1/replay")).status_code == 403
    async with as_user(ADMIN) as client:
        assert (await client.post("/leads/other-lead/webhooks/msg_1/replay")).status_code == 404
        assert not services.sent("POST", "/v1/admin/webhooks/deliveries/msg_1/replay")
        done = await client.post(f"/leads/{LEAD}/webhooks/msg_1/replay")
    assert done.status_code == 303
    assert services.sent("POST", "/v1/admin/webhooks/deliveries/msg_1/replay")


async def test_the_queue_table_polls_and_a_rep_claims_for_themself(as_user: Any, services: Services):
    async with as_user(REP) as client:
        page = await client.get("/queues/triage")
        assert page.status_code == 200
        assert 'hx-get="/queues/triage/leads"' in page.text and "every 5s" in page.text
        assert "20 min 0 s" in page.text and "warned" in page.text
        claimed = await client.post(f"/queues/triage/leads/{LEAD}/claim", data={"rep_id": "rep-ann"})
    assert claimed.status_code == 303
    assert json.loads(services.sent("POST", f"/v1/leads/{LEAD}/claim")[-1].content) == {"rep_id": "rep-bob"}


async def test_a_manager_claims_and_assigns_only_for_their_teams_reps(as_user: Any, services: Services):
    async with as_user(MANAGER) as client:
        assert (await client.post(f"/queues/triage/leads/{LEAD}/claim", data={"rep_id": "rep-ann"})
                ).status_code == 403
        form = await client.get(f"/queues/triage/leads/{LEAD}/assign")
        assert form.status_code == 200 and "rep-bob" in form.text and "rep-ann" not in form.text
        missing = await client.post(f"/queues/triage/leads/{LEAD}/assign", data={"rep_id": "rep-bob", "reason": ""})
        assert missing.status_code == 422 and 'id="assign-reason-error"' in missing.text
        done = await client.post(f"/queues/triage/leads/{LEAD}/assign", data={"rep_id": "rep-bob", "reason": "VIP"})
    assert done.status_code == 303
    assert json.loads(services.sent("POST", f"/v1/leads/{LEAD}/reassign")[-1].content) == {
        "rep_id": "rep-bob", "reason": "VIP"}


async def test_marketing_ops_may_not_work_queues_and_an_unknown_queue_is_a_404(as_user: Any):
    async with as_user(OPS) as client:
        assert (await client.get("/queues")).status_code == 403
    async with as_user(REP) as client:
        assert (await client.get("/queues/nowhere")).status_code == 404


def test_durations_read_at_a_glance():
    assert [duration(s) for s in (None, 0.25, 12, 250, 7500, 190000)] == [
        "-", "250 ms", "12 s", "4 min 10 s", "2 h 5 min", "2 d 4 h"]


async def test_routing_down_when_a_form_posts_is_a_message_not_a_5xx(as_user: Any, services: Services):
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with as_user(ADMIN) as client:
        for path in list(services.answers):
            if path != f"/v1/leads/{LEAD}/timeline":
                services.answers[path] = down
        replayed = await client.post(f"/leads/{LEAD}/webhooks/msg_1/replay")
        assert replayed.status_code == 303
        claimed = await client.post(f"/queues/triage/leads/{LEAD}/claim", data={"rep_id": "rep-bob"})
        assert claimed.status_code == 303
        moved = await client.post(f"/leads/{LEAD}/reassign", data={"target": "queue:triage", "reason": "later"})
    assert moved.status_code == 422
    assert "routing is unavailable: the lead did not move" in moved.text
