"""The people pages in-process over a stand-in routing: an admin manages every rep and team, a sales manager
only their teams and those teams' reps (the rest is a 404, as for what does not exist), and only an admin
makes or removes a team."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from console_pages import StandIn

from leadflow_console.auth import User

ADMIN = User("u1", "admin", "Admin", "admin")
MANAGER = User("u3", "mia", "Mia", "sales_manager", team_ids=("emea", "nordics"))
UNLINKED = User("u6", "max", "Max", "sales_manager")
TEAM_FIELDS = {"strategy": "round_robin", "manager_rep_id": None, "escalate_after_breaches": None,
               "fallback_queue": None, "rep_ids": [], "assignments": 0}
REP_FIELDS = {"email": None, "territories": [], "weight": 1, "daily_capacity": None, "max_open_leads": None,
              "timezone": "UTC", "working_hours": None, "out_of_office": [], "active": True, "open_leads": 0,
              "assigned_today": 0, "unavailable_now": None}


class Routing(StandIn):
    """Routing's admin API for reps and teams, in memory; every request kept."""

    def __init__(self) -> None:
        super().__init__()
        self.teams = {t: {"id": t, "name": t.title(), **TEAM_FIELDS} for t in ("emea", "nordics", "amer")}
        self.reps = {r: {"id": r, "name": r.title(), "team_id": t, **REP_FIELDS}
                     for r, t in (("rep-bob", "emea"), ("rep-sigrid", "nordics"), ("rep-ann", "amer"),
                                  ("rep-solo", None))}

    def answer(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.removeprefix("/v1/admin/").split("/")
        kind, rows = parts[0], {"reps": self.reps, "teams": self.teams}.get(parts[0])
        if rows is None:
            return httpx.Response(404, json={"detail": "not found"})
        body = json.loads(request.content) if request.content else {}
        if len(parts) == 1:
            if request.method == "POST":
                rows[body["id"]] = {**(REP_FIELDS if kind == "reps" else TEAM_FIELDS), **body}
                return httpx.Response(201, json=rows[body["id"]])
            return httpx.Response(200, json=list(rows.values()))
        row = rows.get(parts[1])
        if row is None:
            return httpx.Response(404, json={"detail": f"no such {kind[:-1]}"})
        if len(parts) == 3:  # a rep's notification settings
            return httpx.Response(200, json={"channels": [], "email": None, "slack_user_id": None, **body})
        if request.method == "PATCH":
            row.update(body)
        elif request.method == "DELETE":
            row["active"] = False
            return httpx.Response(204)
        return httpx.Response(200, json=row)


@pytest.fixture
def routing() -> Routing:
    return Routing()


@pytest.fixture
def as_user(routing: Routing, page_client: Any) -> Any:
    return lambda user: page_client(user, routing.handle)


REP_FORM = {"name": "Rep", "timezone": "UTC", "weight": "1", "active": "true"}


async def test_a_manager_sees_only_their_teams_and_their_reps(as_user: Any):
    async with as_user(MANAGER) as client:
        page = (await client.get("/people")).text
    for shown in ("rep-bob", "rep-sigrid", "/people/teams/emea", "/people/teams/nordics", "New rep"):
        assert shown in page, shown
    for hidden in ("rep-ann", "rep-solo", "/people/teams/amer", "New team"):
        assert hidden not in page, hidden
    async with as_user(ADMIN) as client:
        page = (await client.get("/people")).text
    for shown in ("rep-ann", "rep-solo", "/people/teams/amer", "New team"):
        assert shown in page, shown


async def test_a_manager_gets_a_404_for_another_teams_rep_or_team_and_changes_nothing(as_user: Any,
                                                                                   routing: Routing):
    async with as_user(MANAGER) as client:
        for path in ("/people/reps/rep-ann", "/people/reps/rep-solo", "/people/teams/amer"):
            assert (await client.get(path)).status_code == 404, path
        for path, form in (("/people/reps/rep-ann", {**REP_FORM, "team_id": "emea"}),
                           ("/people/reps/rep-ann/notifications", {"channels": "email"}),
                           ("/people/reps/rep-ann/deactivate", {}),
                           ("/people/teams/amer", {"name": "Mine now", "strategy": "round_robin"})):
            assert (await client.post(path, data=form)).status_code == 404, path
        assert (await client.get("/people/reps/rep-bob")).status_code == 200
    assert routing.changes() == []
    assert routing.reps["rep-ann"]["active"] and routing.teams["amer"]["name"] == "Amer"


async def test_a_manager_keeps_a_rep_within_their_teams(as_user: Any, routing: Routing):
    async with as_user(MANAGER) as client:
        page = await client.get("/people/reps/rep-bob")
        assert 'value="nordics"' in page.text and 'value="amer"' not in page.text and "No team" not in page.text
        for team in ("amer", ""):  # another's team, or none: out of their reach either way
            refused = await client.post("/people/reps/rep-bob", data={**REP_FORM, "team_id": team})
            assert refused.status_code == 422 and "must be one of your teams" in refused.text, team
            refused = await client.post("/people/reps/new", data={**REP_FORM, "id": "rep-new", "team_id": team})
            assert refused.status_code == 422 and "must be one of your teams" in refused.text, team
        assert routing.changes() == []

        moved = await client.post("/people/reps/rep-bob", data={**REP_FORM, "team_id": "nordics"})
        made = await client.post("/people/reps/new", data={**REP_FORM, "id": "rep-new", "team_id": "emea"})
    assert moved.status_code == made.status_code == 303
    assert routing.reps["rep-bob"]["team_id"] == "nordics" and routing.reps["rep-new"]["team_id"] == "emea"


async def test_a_manager_edits_their_team_but_only_an_admin_makes_or_removes_one(as_user: Any, routing: Routing):
    team_form = {"name": "Europe", "strategy": "load_balanced"}
    async with as_user(MANAGER) as client:
        page = await client.get("/people/teams/emea")
        assert page.status_code == 200 and "Remove" not in page.text
        assert (await client.post("/people/teams/emea", data=team_form)).status_code == 303
        assert (await client.get("/people/teams/new")).status_code == 403
        assert (await client.post("/people/teams/new", data={**team_form, "id": "apac"})).status_code == 403
        assert (await client.post("/people/teams/emea/delete")).status_code == 403
    assert routing.teams["emea"]["strategy"] == "load_balanced" and "apac" not in routing.teams
    async with as_user(ADMIN) as client:
        assert "Remove" in (await client.get("/people/teams/amer")).text
        assert (await client.post("/people/teams/new", data={**team_form, "id": "apac"})).status_code == 303
        assert (await client.post("/people/reps/rep-ann", data={**REP_FORM, "team_id": ""})).status_code == 303
    assert "apac" in routing.teams and routing.reps["rep-ann"]["team_id"] is None


async def test_a_manager_linked_to_no_team_is_told_so_and_sees_no_one(as_user: Any):
    async with as_user(UNLINKED) as client:
        page = (await client.get("/people")).text
    assert "manages no team yet: an admin must link it" in page
    assert "rep-bob" not in page and "New rep" not in page


async def test_a_manager_names_only_a_rep_of_their_teams_as_a_teams_manager(as_user: Any, routing: Routing):
    team_form = {"name": "Emea", "strategy": "round_robin"}
    async with as_user(MANAGER) as client:
        for rep_id in ("rep-ann", "rep-solo", "rep-nobody"):  # another team's, no team's, no such rep
            refused = await client.post("/people/teams/emea", data={**team_form, "manager_rep_id": rep_id})
            assert refused.status_code == 422 and "must be a rep of your teams" in refused.text, rep_id
        assert routing.changes() == []
        named = await client.post("/people/teams/emea", data={**team_form, "manager_rep_id": "rep-sigrid"})
        assert named.status_code == 303 and routing.teams["emea"]["manager_rep_id"] == "rep-sigrid"

    routing.teams["nordics"]["manager_rep_id"] = "rep-ann"  # named by an admin: kept when the manager saves
    async with as_user(MANAGER) as client:
        kept = await client.post("/people/teams/nordics", data={**team_form, "manager_rep_id": "rep-ann"})
    assert kept.status_code == 303 and routing.teams["nordics"]["manager_rep_id"] == "rep-ann"
    async with as_user(ADMIN) as client:
        named = await client.post("/people/teams/emea", data={**team_form, "manager_rep_id": "rep-ann"})
    assert named.status_code == 303 and routing.teams["emea"]["manager_rep_id"] == "rep-ann"
