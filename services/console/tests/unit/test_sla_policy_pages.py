"""The SLA policy pages in-process over a stand-in routing and sla: a sales manager sets only their teams'
policies and their teams' reps' calendars (the tier defaults shown, not changeable; the rest a 404 and never
asked of sla); an admin sets every one."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from console_pages import StandIn

from leadflow_console.auth import User

ADMIN = User("u1", "admin", "Admin", "admin")
MANAGER = User("u3", "mia", "Mia", "sales_manager", team_ids=("emea",))
POLICY = {"target_seconds": 300, "warning_ratio": 0.8, "breach_limit": 3, "use_owner_hours": False, "active": True,
          "business_hours": None}
POLICY_FORM = {"tier": "warm", "name": "Warm", "target_seconds": "1800", "warning_ratio": "0.8", "breach_limit": "3",
               "active": "on"}
HOURS_FORM = {"timezone": "Europe/Paris", "days": ["0", "1"], "start": "09:00", "end": "17:00"}


class Services(StandIn):
    """Routing's teams and reps and sla's policies and calendars, in memory; every request kept."""

    def __init__(self) -> None:
        super().__init__()
        self.teams = [{"id": t, "name": t.upper()} for t in ("emea", "amer")]
        self.reps = {"rep-bob": {"id": "rep-bob", "name": "Bob", "team_id": "emea"},
                     "rep-ann": {"id": "rep-ann", "name": "Ann", "team_id": "amer"}}
        self.policies = {p["id"]: p for p in (
            {"id": "pol-default", "tier": "hot", "team_id": None, "name": "Hot default", **POLICY},
            {"id": "pol-emea", "tier": "hot", "team_id": "emea", "name": "Hot EMEA", **POLICY},
            {"id": "pol-amer", "tier": "hot", "team_id": "amer", "name": "Hot AMER", **POLICY})}
        self.calendars: dict[str, dict[str, Any]] = {}

    def answer(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else {}
        if path == "/v1/admin/teams":
            return httpx.Response(200, json=self.teams)
        if path == "/v1/admin/reps":
            return httpx.Response(200, json=list(self.reps.values()))
        if path.startswith("/v1/admin/reps/"):
            rep = self.reps.get(path.rsplit("/", 1)[1])
            return httpx.Response(200, json=rep) if rep else httpx.Response(404, json={"detail": "no such rep"})
        if path == "/v1/admin/sla-policies":
            if method == "POST":
                made = {"id": f"pol-{len(self.policies)}", "team_id": None, **POLICY, **body}
                self.policies[made["id"]] = made
                return httpx.Response(201, json=made)
            return httpx.Response(200, json=list(self.policies.values()))
        if path.startswith("/v1/admin/sla-policies/"):
            policy = self.policies.get(path.rsplit("/", 1)[1])
            if policy is None:
                return httpx.Response(404, json={"detail": "no such policy"})
            if method == "DELETE":
                del self.policies[policy["id"]]
                return httpx.Response(204)
            policy.update(body)
            return httpx.Response(200, json=policy)
        if path.startswith("/v1/admin/sla-calendars/"):
            rep_id = path.rsplit("/", 1)[1]
            if method == "PUT":
                self.calendars[rep_id] = {"rep_id": rep_id, "business_hours": body}
            elif method == "DELETE":
                self.calendars.pop(rep_id, None)
                return httpx.Response(204)
            calendar = self.calendars.get(rep_id)
            return httpx.Response(200, json=calendar) if calendar else httpx.Response(404, json={"detail": "none"})
        return httpx.Response(404, json={"detail": "not found"})


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
def as_user(services: Services, page_client: Any) -> Any:
    return lambda user: page_client(user, services.handle)


async def test_a_manager_sees_their_teams_policies_and_reps_and_the_defaults_read_only(as_user: Any):
    async with as_user(MANAGER) as client:
        page = (await client.get("/sla-policies")).text
    assert "Hot EMEA" in page and "/sla-policies/pol-emea" in page and "/sla-policies/calendars/rep-bob" in page
    assert "Hot default" in page and "/sla-policies/pol-default" not in page and "set by an admin" in page
    for hidden in ("Hot AMER", "rep-ann", "Every team (the tier", 'value="amer"'):
        assert hidden not in page, hidden
    async with as_user(ADMIN) as client:
        page = (await client.get("/sla-policies")).text
    for shown in ("/sla-policies/pol-default", "/sla-policies/pol-amer", "rep-ann", "Every team (the tier"):
        assert shown in page, shown


async def test_another_teams_policy_or_rep_or_a_default_is_a_404_to_a_manager_and_sla_is_not_asked(
        as_user: Any, services: Services):
    async with as_user(MANAGER) as client:
        for path in ("/sla-policies/pol-amer", "/sla-policies/pol-default", "/sla-policies/calendars/rep-ann"):
            assert (await client.get(path)).status_code == 404, path
        for path, form in (("/sla-policies/pol-amer", POLICY_FORM), ("/sla-policies/pol-default", POLICY_FORM),
                           ("/sla-policies/pol-amer/delete", {}), ("/sla-policies/calendars/rep-ann", HOURS_FORM),
                           ("/sla-policies/calendars/rep-ann/delete", {})):
            assert (await client.post(path, data=form)).status_code == 404, path
    assert services.changes() == []


async def test_a_manager_makes_policies_only_for_their_teams(as_user: Any, services: Services):
    async with as_user(MANAGER) as client:
        for team in ("amer", ""):  # another team's, or every team's
            refused = await client.post("/sla-policies", data={**POLICY_FORM, "team_id": team})
            assert refused.status_code == 422 and "must be one of your teams" in refused.text, team
        assert services.changes() == []
        made = await client.post("/sla-policies", data={**POLICY_FORM, "team_id": "emea"})
        saved = await client.post("/sla-policies/pol-emea", data={**POLICY_FORM, "name": "Hot EMEA, faster"})
        calendar = await client.post("/sla-policies/calendars/rep-bob", data=HOURS_FORM)
    assert made.status_code == saved.status_code == calendar.status_code == 303
    assert services.changes() == ["POST /v1/admin/sla-policies", "PATCH /v1/admin/sla-policies/pol-emea",
                                  "PUT /v1/admin/sla-calendars/rep-bob"]
    assert json.loads(services.requests[-1].content)["timezone"] == "Europe/Paris"


async def test_an_admin_sets_every_policy_and_calendar(as_user: Any, services: Services):
    async with as_user(ADMIN) as client:
        assert (await client.post("/sla-policies", data={**POLICY_FORM, "team_id": ""})).status_code == 303
        assert (await client.post("/sla-policies/pol-default/delete")).status_code == 303
        assert (await client.post("/sla-policies/calendars/rep-ann", data=HOURS_FORM)).status_code == 303
    assert "pol-default" not in services.policies and "rep-ann" in services.calendars
