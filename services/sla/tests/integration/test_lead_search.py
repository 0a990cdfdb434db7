"""GET /v1/leads finds any lead: every filter, both sorts each way, page by page, and forgets an erased person.

The leads, built from their events by hand (C = 2026-11-10 10:00 UTC):

    lead  captured   email (as typed)            name      company  source    campaign  form     score tier
    A     C          Ada.Park@Initech.EXAMPLE    Ada Park  Initech  google    spring    demo     82    hot
    B     C + 1 h    bo@globex.example           -         Globex   linkedin  fall      pricing  40    cold
    D     C + 2 h    dee@initech.example         -         initech  (direct)  -         demo     -     -
    E     C - 40 d   eve@umbrella.example        Eve Ng    Umbrella google    spring    demo     60    warm
    M     C + 3 h    a repeat fill by A's person, merged into A by enrichment: not a lead of its own

    A: MQL, routed to rep-ada (team emea), not touched: its clock runs.
    B: routed to the queue 'triage' of team amer (no rep): its clock runs.
    D: captured only: no clock.
    E: routed to rep-bob (team amer), contacted after 10 minutes (warm: 1 h): SLA met, stage accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import (
    Attribution,
    DataQuality,
    LeadCaptured,
    LeadContact,
    LeadEnriched,
    LeadProfile,
    LeadRouted,
    LeadScored,
    LeadTouched,
    PrivacyErasureRequested,
    RoutedOwner,
    new_event,
)
from leadflow_kit.clock import FrozenClock

C = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def _captured(env: Any, lead_id: str, at: datetime, contact: LeadContact, source: str | None,
              campaign: str | None, form: str) -> Any:
    fill = LeadCaptured(lead_id=lead_id, form_key=form, submitted_at=at, contact=contact,
                        attribution=Attribution(utm_source=source, utm_campaign=campaign))
    return env.lead_event(fill, lead_id, at, at, "capture")


def _scored(env: Any, lead_id: str, at: datetime, score: float, tier: str, mql: bool) -> Any:
    data = LeadScored(lead_id=lead_id, score=score, fit_grade="B", engagement_level=2, tier=tier, is_mql=mql,
                      model_version="v1", lifecycle_stage="mql" if mql else "lead")
    return env.lead_event(data, lead_id, at + S, at, "scoring")


def _routed(env: Any, lead_id: str, at: datetime, tier: str, rep: str | None, team: str,
            queue: str | None = None) -> Any:
    data = LeadRouted(lead_id=lead_id, assignment_id=f"as-{lead_id}", reason="test", tier=tier, team_id=team,
                      owner=RoutedOwner(rep_id=rep, team_id=team) if rep else None, queue=queue)
    return env.lead_event(data, lead_id, at + 2 * S, at, "routing")


async def _seed(env: Any) -> dict[str, str]:
    ids = {name: f"{name}-{env.new_lead_id()}" for name in "ABDEM"}
    a, b, d, e = C, C + timedelta(hours=1), C + timedelta(hours=2), C - timedelta(days=40)
    events = [
        _captured(env, ids["A"], a, LeadContact(email="Ada.Park@Initech.EXAMPLE", first_name="ada",
                                                company="initech inc"), "google", "spring", "demo"),
        env.lead_event(LeadEnriched(
            lead_id=ids["A"], captured_lead_id=ids["A"], form_key="demo",
            profile=LeadProfile(email="ada.park@initech.example", first_name="Ada", last_name="Park",
                                company="Initech"),
            original=LeadContact(email="Ada.Park@Initech.EXAMPLE"), quality=DataQuality(score=90)),
            ids["A"], a + S / 2, a, "enrichment"),
        _scored(env, ids["A"], a, 82, "hot", True),
        _routed(env, ids["A"], a, "hot", "rep-ada", "emea"),
        _captured(env, ids["B"], b, LeadContact(email="bo@globex.example", company="Globex"), "linkedin", "fall",
                  "pricing"),
        _scored(env, ids["B"], b, 40, "cold", False),
        _routed(env, ids["B"], b, "cold", None, "amer", queue="triage"),
        _captured(env, ids["D"], d, LeadContact(email="dee@initech.example", company="initech"), None, None, "demo"),
        _captured(env, ids["E"], e, LeadContact(email="eve@umbrella.example", full_name="Eve Ng",
                                                company="Umbrella"), "google", "spring", "demo"),
        _scored(env, ids["E"], e, 60, "warm", False),
        _routed(env, ids["E"], e, "warm", "rep-bob", "amer"),
        env.lead_event(LeadTouched(lead_id=ids["E"], touch_id="t-e", touch_type="contacted",
                                   occurred_at=e + 600 * S), ids["E"], e + 600 * S, e, "routing"),
        _captured(env, ids["M"], C + timedelta(hours=3), LeadContact(email="ada.park@initech.example"), "google",
                  "spring", "demo"),
        env.lead_event(LeadEnriched(
            lead_id=ids["A"], captured_lead_id=ids["M"], duplicate_of=ids["A"], form_key="demo",
            profile=LeadProfile(email="ada.park@initech.example", first_name="Ada", last_name="Park",
                                company="Initech"),
            original=LeadContact(email="ada.park@initech.example"), quality=DataQuality(score=90)),
            ids["A"], C + timedelta(hours=3, seconds=1), C + timedelta(hours=3), "enrichment"),
    ]
    for event in events:
        await env.send(event)

    async def settled() -> bool:
        rows = await env.fetch(
            "SELECT (SELECT count(*) FROM lead WHERE lead_id = ANY($1) AND captured_at IS NOT NULL) AS leads, "
            "(SELECT merged_into FROM lead WHERE lead_id = $2) AS merged, "
            "(SELECT sla_outcome FROM lead WHERE lead_id = $3) AS outcome, "
            "(SELECT count(*) FROM sla_clock WHERE lead_id = ANY($4) AND status = 'open') AS running",
            list(ids.values()), ids["M"], ids["E"], [ids["A"], ids["B"]])
        row = rows[0]
        return bool(row["leads"] == 5 and row["merged"] == ids["A"] and row["outcome"] == "met"
                    and row["running"] == 2)

    await env.eventually(settled)
    return ids


async def _found(client: Any, **params: Any) -> list[str]:
    answer = await client.get("/v1/leads", params=params)
    assert answer.status_code == 200, answer.text
    return [lead["lead_id"] for lead in answer.json()["leads"]]


async def test_every_filter_and_sort_finds_the_leads_worked_out_by_hand(sla_env: Any, apps: Any) -> None:
    _, client = await apps.start(FrozenClock(C + timedelta(hours=4)), scheduler_interval_seconds=3600)
    ids = await _seed(sla_env)
    a, b, d, e = ids["A"], ids["B"], ids["D"], ids["E"]

    page = (await client.get("/v1/leads", params={"email": " ADA.park@initech.example "})).json()
    assert page == {"next_cursor": None, "leads": [{
        "lead_id": a, "email": "ada.park@initech.example", "name": "Ada Park", "company": "Initech",
        "stage": "mql", "tier": "hot", "score": 82.0, "owner": "rep-ada", "team": "emea", "queue": None,
        "source": "google", "campaign": "spring", "form": "demo", "captured_at": "2026-11-10T10:00:00Z",
        "sla": {"state": "running", "breach_count": 0},
    }]}
    by_id = {lead["lead_id"]: lead for lead in (await client.get("/v1/leads")).json()["leads"]}
    assert by_id[b]["sla"] == {"state": "running", "breach_count": 0} and by_id[b]["queue"] == "triage"
    assert by_id[b]["owner"] is None and by_id[b]["stage"] == "captured" and by_id[b]["name"] is None
    assert by_id[d]["sla"]["state"] == "none" and by_id[d]["score"] is None and by_id[d]["source"] == "direct"
    assert by_id[e]["sla"]["state"] == "met" and by_id[e]["stage"] == "accepted" and by_id[e]["name"] == "Eve Ng"

    assert await _found(client, email="nobody@initech.example") == []
    # An address enrichment would not store (a special-use domain) is searched for, and finds nothing.
    assert await _found(client, email="Someone@Example.INVALID") == []
    assert await _found(client, company="INITECH") == [d, a]
    assert await _found(client, owner="rep-ada") == [a]
    assert await _found(client, team="amer") == [b, e]
    assert await _found(client, queue="triage") == [b]
    assert await _found(client, stage="captured") == [d, b]
    assert await _found(client, stage="accepted") == [e]
    assert await _found(client, tier="hot") == [a]
    assert await _found(client, source="google") == [a, e]
    assert await _found(client, source="direct") == [d]
    assert await _found(client, campaign="fall") == [b]
    assert await _found(client, form="demo") == [d, a, e]
    assert await _found(client, captured_from="2026-11-10T10:00:00Z", captured_to="2026-11-10T12:00:00Z") == [b, a]
    assert await _found(client, captured_to="2026-11-01") == [e]
    assert await _found(client, form="demo", source="google", captured_from="2026-11-01") == [a]

    assert await _found(client) == [d, b, a, e]
    assert await _found(client, sort="captured_at") == [e, a, b, d]
    # D has no score yet: it sorts below every scored lead.
    assert await _found(client, sort="score") == [d, b, e, a]
    assert await _found(client, sort="-score") == [a, e, b, d]
    assert await _found(client, sort="-score", team="amer") == [e, b]
    await _pages_follow_each_other_without_gaps_or_repeats(client)


async def _pages_follow_each_other_without_gaps_or_repeats(client: Any) -> None:
    for sort in ("captured_at", "-captured_at", "score", "-score"):
        whole = await _found(client, sort=sort)
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params = {"sort": sort, "limit": 3, **({"cursor": cursor} if cursor else {})}
            assert len(seen) < 4, "a page repeats"
            page = (await client.get("/v1/leads", params=params)).json()
            seen += [lead["lead_id"] for lead in page["leads"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == whole, sort
    first = (await client.get("/v1/leads", params={"limit": 2, "sort": "score"})).json()
    assert len(first["leads"]) == 2 and first["next_cursor"]
    # A cursor belongs to its sort: another sort refuses it rather than misread it.
    other = await client.get("/v1/leads", params={"sort": "captured_at", "cursor": first["next_cursor"]})
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "cursor"


async def test_bad_filters_are_refused_naming_the_field(apps: Any) -> None:
    _, client = await apps.start(FrozenClock(C), scheduler_interval_seconds=3600)
    for params, field in (
        ({"email": "not-an-address"}, "email"),
        ({"sort": "name"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"stage": "won"}, "stage"),
        ({"tier": "lukewarm"}, "tier"),
        ({"captured_from": "yesterday"}, "captured_from"),
        ({"captured_from": "2026-11-02", "captured_to": "2026-11-01"}, "captured_from"),
        ({"cursor": "garbage"}, "cursor"),
        ({"owner": ""}, "owner"),
        ({"campaign": "spring\x00"}, "campaign"),
    ):
        answer = await client.get("/v1/leads", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert [error["field"] for error in answer.json()["errors"]] == [field], (params, answer.json())
    unauthorized = await client.get("/v1/leads", headers={"Authorization": ""})
    assert unauthorized.status_code == 401


async def test_an_erased_person_is_found_no_more(sla_env: Any, apps: Any) -> None:
    _, client = await apps.start(FrozenClock(C), scheduler_interval_seconds=3600)
    lead_id = f"X-{sla_env.new_lead_id()}"
    await sla_env.send(_captured(sla_env, lead_id, C, LeadContact(email="Gone@Erased.example", first_name="Gone",
                                                                  company="Erased Ltd"), "google", None, "demo"))

    async def findable() -> list[str]:
        return await _found(client, email="gone@erased.example")

    assert await sla_env.eventually(findable) == [lead_id]
    # By email alone: sla finds the person's leads by the email it keeps.
    request = PrivacyErasureRequested(erasure_id="er-1", email="gone@erased.example", requested_at=C)
    await sla_env.send(new_event(request, source="capture", subject="er-1", time=C))

    async def erased() -> bool:
        return not await sla_env.fetch("SELECT 1 FROM lead WHERE lead_id = $1", lead_id)

    await sla_env.eventually(erased)
    assert await _found(client, email="gone@erased.example") == []
    assert await _found(client, company="erased ltd") == []
