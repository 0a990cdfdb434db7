"""Reports over time (in-period trend, cohorts) and speed to lead, over a quarter of leads sent by hand.

The first quarter of 2027 in Paris (UTC+1 all quarter; ISO weeks start Monday 00:00 Paris time):

    lead  captured (UTC)          Paris week  team  rep        tier  what happens
    A     Sun 10 Jan 22:30        04 Jan      emea  ada        hot   scored SQL; contacted +120 s (met);
                                                                     opportunity 3 Feb
    B     Sun 10 Jan 23:30        11 Jan      emea  ada        hot   MQL; breach; contacted +600 s (breached)
    C     Tue 12 Jan 10:00        11 Jan      amer  bob        warm  MQL; contacted +1800 s (met); converted 1 Mar
    D     Wed 13 Jan 10:00        11 Jan      amer  bob        cold  not MQL; never touched (clock open)
    E     Wed 13 Jan 11:00        11 Jan      emea  cy -> mia  hot   MQL; breach; escalated to mia, who calls
                                                                     at +460 s (breached)
    X     Wed 30 Dec 2026 10:00   (before)    -     -          -     converted on Tue 5 Jan (not in the cohorts)

B is captured on Sunday in UTC but on Monday in Paris: with tz=UTC it joins A's week.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import Attribution, LeadCaptured, LeadContact, LeadRouted, LeadScored, LeadTouched, RoutedOwner
from leadflow_kit.app import app_deps
from leadflow_kit.clock import FrozenClock

S = timedelta(seconds=1)
CAPTURED = {
    "A": datetime(2027, 1, 10, 22, 30, tzinfo=UTC), "B": datetime(2027, 1, 10, 23, 30, tzinfo=UTC),
    "C": datetime(2027, 1, 12, 10, 0, tzinfo=UTC), "D": datetime(2027, 1, 13, 10, 0, tzinfo=UTC),
    "E": datetime(2027, 1, 13, 11, 0, tzinfo=UTC), "X": datetime(2026, 12, 30, 10, 0, tzinfo=UTC),
}
# name: (team, rep, tier, is MQL, lifecycle stage when scored); X is never routed.
LEADS = {"A": ("emea", "ada", "hot", True, "sql"), "B": ("emea", "ada", "hot", True, "mql"),
         "C": ("amer", "bob", "warm", True, "mql"), "D": ("amer", "bob", "cold", False, "lead"),
         "E": ("emea", "cy", "hot", True, "mql"), "X": ("", "", "cold", False, "lead")}
# The scheduler fires once, here: B's and E's 5-minute clocks have run out, D's 24-hour one has not warned.
FIRED_AT = CAPTURED["E"] + 400 * S
QUARTER = {"from": "2027-01-01T00:00:00+01:00", "to": "2027-04-01T00:00:00+02:00"}


def _arrival(env: Any, name: str, lead_id: str) -> list[Any]:
    team, rep, tier, mql, stage = LEADS[name]
    at = CAPTURED[name]
    fill = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=at, contact=LeadContact(email=f"{name}@x.io"),
                        attribution=Attribution(utm_source="google"))
    scored = LeadScored(lead_id=lead_id, score=50, fit_grade="B", engagement_level=2, tier=tier, is_mql=mql,
                        model_version="v1", lifecycle_stage=stage)
    events = [env.lead_event(fill, lead_id, at, at, "capture"),
              env.lead_event(scored, lead_id, at + S / 2, at, "scoring")]
    if team:
        routed = LeadRouted(lead_id=lead_id, assignment_id=f"as-{name}", reason="round robin", tier=tier,
                            owner=RoutedOwner(rep_id=rep, team_id=team))
        events.append(env.lead_event(routed, lead_id, at + S, at, "routing"))
    return events


def _touch(env: Any, name: str, lead_id: str, touch_type: str, at: datetime) -> Any:
    data = LeadTouched(lead_id=lead_id, touch_id=f"{touch_type}-{name}", touch_type=touch_type, occurred_at=at)
    return env.lead_event(data, lead_id, at, CAPTURED[name], "routing")


async def _lead_column(env: Any, lead_id: str, column: str) -> Any:
    rows = await env.fetch(f"SELECT {column} AS value FROM lead WHERE lead_id = $1", lead_id)
    return rows[0]["value"] if rows else None


async def _until_set(env: Any, ids: list[str], column: str) -> None:
    async def all_set() -> bool:
        return all([await _lead_column(env, lead_id, column) for lead_id in ids])

    await env.eventually(all_set)


async def _build_quarter(env: Any, app: Any, clock: FrozenClock) -> dict[str, str]:
    ids = {name: f"{name}-{env.new_lead_id()}" for name in LEADS}
    for name, lead_id in ids.items():
        for event in _arrival(env, name, lead_id):
            await env.send(event)
    await _until_set(env, [ids[n] for n in "ABCDE"], "first_routed_at")
    for name, seconds in (("A", 120), ("C", 1800)):
        await env.send(_touch(env, name, ids[name], "contacted", CAPTURED[name] + seconds * S))
    await env.send(_touch(env, "X", ids["X"], "converted", datetime(2027, 1, 5, 10, 0, tzinfo=UTC)))
    await _until_set(env, [ids["A"], ids["C"], ids["X"]], "first_touch_at")

    clock.set(FIRED_AT)
    fired = await app_deps(app).scheduler.fire_due()
    assert sorted((f.lead_id, f.kind) for f in fired) == sorted(
        (ids[n], kind) for n in "BE" for kind in ("warning", "breach"))
    await _until_set(env, [ids["B"], ids["E"]], "breach_count")

    escalated = LeadRouted(lead_id=ids["E"], assignment_id="as-E-2", reason="escalated to the team manager",
                           tier="hot", owner=RoutedOwner(rep_id="mia", team_id="emea"), reroute=True,
                           reroute_reason="sla_breach_escalation", previous_owner_rep_id="cy", escalated=True)
    await env.send(env.lead_event(escalated, ids["E"], FIRED_AT + S, CAPTURED["E"], "routing"))

    async def escalated_to_mia() -> bool:
        return bool(await _lead_column(env, ids["E"], "rep_id") == "mia")

    await env.eventually(escalated_to_mia)
    await env.send(_touch(env, "B", ids["B"], "contacted", CAPTURED["B"] + 600 * S))
    await env.send(_touch(env, "E", ids["E"], "contacted", FIRED_AT + 60 * S))
    await env.send(_touch(env, "A", ids["A"], "opportunity_created", datetime(2027, 2, 3, 10, 0, tzinfo=UTC)))
    await env.send(_touch(env, "C", ids["C"], "converted", datetime(2027, 3, 1, 10, 0, tzinfo=UTC)))
    await _until_set(env, [ids["B"], ids["E"]], "first_touch_at")
    await _until_set(env, [ids["A"], ids["C"]], "opportunity_at")
    return ids


def _counts(captured: int = 0, mql: int = 0, accepted: int = 0, sql: int = 0, opportunity: int = 0,
            converted: int = 0, **more: int) -> dict[str, int]:
    return {"captured": captured, "mql": mql, "accepted": accepted, "sql": sql, "opportunity": opportunity,
            "converted": converted, **more}


def _csv(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def _number(value: Any) -> str:
    return "" if value is None else f"{value:g}"


async def test_trend_cohorts_and_speed_to_lead_match_the_hand_worked_quarter(sla_env: Any, apps: Any) -> None:
    clock = FrozenClock(CAPTURED["A"])
    app, client = await apps.start(clock, scheduler_interval_seconds=3600)
    await _build_quarter(sla_env, app, clock)
    await _in_period(client)
    await _cohorts(client)
    await _speed_to_lead(client)


async def _in_period(client: Any) -> None:
    weekly = (await client.get("/v1/reports/funnel/trend",
                               params={**QUARTER, "interval": "week", "tz": "Europe/Paris"})).json()
    assert weekly["kind"] == "in_period" and weekly["tz"] == "Europe/Paris"
    assert weekly["week_starts"].startswith("Monday")
    buckets = {b["bucket"]: b for b in weekly["buckets"]}
    # 28 Dec 2026 (the week holding 1 January) to 29 March 2027: 14 weeks, the empty ones too.
    assert len(buckets) == 14 and weekly["buckets"][0]["bucket"] == "2026-12-28"
    assert buckets["2027-01-11"]["start"] == "2027-01-11T00:00:00+01:00"
    assert buckets["2027-01-11"]["end"] == "2027-01-18T00:00:00+01:00"
    expected = {
        # A captured and made SQL (with MQL and acceptance) on Sunday night; X converted on Tuesday 5 Jan
        # (every stage up to it with it); A and X first touched.
        "2027-01-04": _counts(1, 2, 2, 2, 1, 1, first_touched=2),
        # B (Monday 00:30 in Paris), C, D, E captured; B, C, E made MQL, accepted by their first touch.
        "2027-01-11": _counts(4, 3, 3, 0, 0, 0, first_touched=3),
        "2027-02-01": _counts(opportunity=1, first_touched=0),
        # C converted on 1 March: SQL and opportunity were reached then too.
        "2027-03-01": _counts(sql=1, opportunity=1, converted=1, first_touched=0),
    }
    for key, bucket in buckets.items():
        assert bucket["counts"] == expected.get(key, _counts(first_touched=0)), key
    assert weekly["total"]["counts"] == _counts(5, 5, 5, 3, 3, 2, first_touched=5)
    # Speed to lead of the leads first touched in the week: A 120 s and X 6 days (518400 s): p90 at rank
    # 0.9 = 120 + 0.9 * 518280; then B 600, C 1800, E 460: p90 at rank 1.8 = 600 + 0.8 * 1200.
    assert buckets["2027-01-04"]["speed_to_lead_seconds"] == {"median": 259260.0, "p90": 466572.0}
    assert buckets["2027-01-11"]["speed_to_lead_seconds"] == {"median": 600.0, "p90": 1560.0}
    assert buckets["2027-02-01"]["speed_to_lead_seconds"] == {"median": None, "p90": None}
    # 120, 460, 600, 1800, 518400: p90 at rank 3.6 = 1800 + 0.6 * 516600.
    assert weekly["total"]["speed_to_lead_seconds"] == {"median": 600.0, "p90": 311760.0}

    in_utc = (await client.get("/v1/reports/funnel/trend",
                               params={**QUARTER, "interval": "week", "tz": "UTC"})).json()
    captured_utc = {b["bucket"]: b["counts"]["captured"] for b in in_utc["buckets"] if b["counts"]["captured"]}
    assert captured_utc == {"2027-01-04": 2, "2027-01-11": 3}

    monthly = (await client.get("/v1/reports/funnel/trend",
                                params={**QUARTER, "interval": "month", "tz": "Europe/Paris"})).json()
    assert [(b["bucket"], b["counts"]) for b in monthly["buckets"]] == [
        ("2027-01-01", _counts(5, 5, 5, 2, 1, 1, first_touched=5)),
        ("2027-02-01", _counts(opportunity=1, first_touched=0)),
        ("2027-03-01", _counts(sql=1, opportunity=1, converted=1, first_touched=0)),
    ]
    rows = _csv(await client.get("/v1/reports/funnel/trend",
                                 params={**QUARTER, "interval": "month", "tz": "Europe/Paris", "format": "csv"}))
    assert [r["bucket"] for r in rows] == ["2027-01-01", "2027-02-01", "2027-03-01", "total"]
    for row, bucket in zip(rows, [*monthly["buckets"], monthly["total"]], strict=True):
        assert {k: int(row[k]) for k in bucket["counts"]} == bucket["counts"]
        assert (row["speed_to_lead_median_seconds"], row["speed_to_lead_p90_seconds"]) == (
            _number(bucket["speed_to_lead_seconds"]["median"]), _number(bucket["speed_to_lead_seconds"]["p90"]))
    assert rows[0]["speed_to_lead_p90_seconds"] == "311760" and rows[1]["speed_to_lead_median_seconds"] == ""
    assert rows[0]["start"] == "2027-01-01T00:00:00+01:00" and rows[2]["end"] == "2027-04-01T00:00:00+02:00"

    daily = (await client.get("/v1/reports/funnel/trend",
                              params={**QUARTER, "interval": "day", "tz": "Europe/Paris"})).json()
    days = {b["bucket"]: b["counts"]["captured"] for b in daily["buckets"] if b["counts"]["captured"]}
    assert days == {"2027-01-10": 1, "2027-01-11": 1, "2027-01-12": 1, "2027-01-13": 2}
    assert len(daily["buckets"]) == 90


async def _cohorts(client: Any) -> None:
    weekly = (await client.get("/v1/reports/cohorts",
                               params={**QUARTER, "interval": "week", "tz": "Europe/Paris"})).json()
    assert weekly["kind"] == "cohort"
    buckets = {b["bucket"]: b for b in weekly["buckets"]}
    first, second = buckets["2027-01-04"], buckets["2027-01-11"]
    # A alone, now at opportunity (3 Feb counts for the cohort of its capture week).
    assert first["counts"] == _counts(1, 1, 1, 1, 1, 0)
    assert first["speed_to_lead_seconds"] == {"touched": 1, "median": 120.0, "p90": 120.0}
    assert first["sla"] == {"met": 1, "breached": 0, "compliance_pct": 100.0}
    # B (accepted), C (converted), D (captured), E (accepted).
    assert second["counts"] == _counts(4, 3, 3, 1, 1, 1)
    assert second["conversion_rates"] == {
        "captured_to_mql": 0.75, "mql_to_accepted": 1.0, "accepted_to_sql": 0.3333, "mql_to_sql": 0.3333,
        "sql_to_opportunity": 1.0, "opportunity_to_converted": 1.0, "captured_to_converted": 0.25,
    }
    # 460, 600, 1800: p90 at rank 1.8 = 600 + 0.8 * 1200.
    assert second["speed_to_lead_seconds"] == {"touched": 3, "median": 600.0, "p90": 1560.0}
    assert second["sla"] == {"met": 1, "breached": 2, "compliance_pct": 33.33}
    assert all(b["counts"]["captured"] == 0 for k, b in buckets.items() if k not in ("2027-01-04", "2027-01-11"))
    total = weekly["total"]
    assert total["counts"] == _counts(5, 4, 4, 2, 2, 1)
    # 120, 460, 600, 1800: median (460 + 600) / 2; p90 at rank 2.7 = 600 + 0.7 * 1200.
    assert total["speed_to_lead_seconds"] == {"touched": 4, "median": 530.0, "p90": 1440.0}
    assert total["sla"] == {"met": 2, "breached": 2, "compliance_pct": 50.0}

    in_utc = (await client.get("/v1/reports/cohorts", params={**QUARTER, "interval": "week", "tz": "UTC"})).json()
    assert {b["bucket"]: b["counts"]["captured"] for b in in_utc["buckets"] if b["counts"]["captured"]} == {
        "2027-01-04": 2, "2027-01-11": 3}

    rows = _csv(await client.get("/v1/reports/cohorts", params={**QUARTER, "interval": "week", "tz": "Europe/Paris"},
                                 headers={"Accept": "text/csv"}))
    assert [r["bucket"] for r in rows] == [*buckets, "total"]
    for row, bucket in zip(rows, [*weekly["buckets"], total], strict=True):
        assert {k: int(row[k]) for k in bucket["counts"]} == bucket["counts"]
        assert {k: row[k] for k in bucket["conversion_rates"]} == {
            k: _number(v) for k, v in bucket["conversion_rates"].items()}
        speed, sla = bucket["speed_to_lead_seconds"], bucket["sla"]
        assert (row["touched"], row["speed_to_lead_median_seconds"], row["speed_to_lead_p90_seconds"]) == (
            str(speed["touched"]), _number(speed["median"]), _number(speed["p90"]))
        assert (row["sla_met"], row["sla_breached"], row["sla_compliance_pct"]) == (
            str(sla["met"]), str(sla["breached"]), _number(sla["compliance_pct"]))


async def _speed_to_lead(client: Any) -> None:
    by_rep = (await client.get("/v1/reports/speed-to-lead", params={**QUARTER, "group_by": "rep"})).json()
    assert "percentile_cont" in by_rep["percentile"]
    figures = ("leads", "touched", "first_touch_median_seconds", "first_touch_p90_seconds", "sla_met",
               "sla_breached", "within_sla_pct", "breaches", "escalations")
    reps = {g["group"]: tuple(g[f] for f in figures) for g in by_rep["groups"]}
    assert reps == {
        # 120 and 600: p90 = 120 + 0.9 * 480.
        "ada": (2, 2, 360.0, 552.0, 1, 1, 50.0, 1, 0),
        "bob": (2, 1, 1800.0, 1800.0, 1, 0, 100.0, 0, 0),
        # E counts under the manager it was escalated to, as the funnel's rep groups do.
        "mia": (1, 1, 460.0, 460.0, 0, 1, 0.0, 1, 1),
    }
    assert tuple(by_rep["total"][f] for f in figures) == (5, 4, 530.0, 1440.0, 2, 2, 50.0, 2, 1)

    by_team = (await client.get("/v1/reports/speed-to-lead", params={**QUARTER, "group_by": "team"})).json()
    teams = {g["group"]: tuple(g[f] for f in figures) for g in by_team["groups"]}
    # 120, 460, 600: p90 at rank 1.8 = 460 + 0.8 * 140.
    assert teams == {"amer": (2, 1, 1800.0, 1800.0, 1, 0, 100.0, 0, 0),
                     "emea": (3, 3, 460.0, 572.0, 1, 2, 33.33, 2, 1)}

    rows = _csv(await client.get("/v1/reports/speed-to-lead", params={**QUARTER, "group_by": "team", "format": "csv"}))
    assert [r["group"] for r in rows] == ["amer", "emea", "total"]
    for row, group in zip(rows, [*by_team["groups"], by_team["total"]], strict=True):
        assert {f: row[f] for f in figures} == {f: _number(group[f]) for f in figures}

    # The same leads' funnel, by rep, agrees on speed to lead and compliance.
    funnel = (await client.get("/v1/reports/funnel", params={**QUARTER, "group_by": "rep"})).json()
    for group in funnel["groups"]:
        _, touched, median, p90, met, breached, pct, _, _ = reps[group["group"]]
        assert group["speed_to_lead_seconds"] == {"touched": touched, "median": median, "p90": p90}
        assert group["sla"] == {"met": met, "breached": breached, "compliance_pct": pct}


async def test_bad_report_parameters_are_clear_422s(sla_env: Any, apps: Any) -> None:
    _, client = await apps.start(FrozenClock(CAPTURED["A"]), scheduler_interval_seconds=3600)
    for path in ("/v1/reports/funnel/trend", "/v1/reports/cohorts"):
        for params, field in (({"tz": "Mars/Olympus"}, "tz"), ({"tz": "../../etc/passwd"}, "tz"),
                              ({"interval": "fortnight"}, "interval"),
                              ({"from": "1900-01-01", "interval": "day"}, "interval"),
                              ({"from": "2027-02-01", "to": "2027-01-01"}, "from")):
            answer = await client.get(path, params=params)
            assert answer.status_code == 422, (path, params)
            assert answer.json()["errors"][0]["field"] == field, (path, params)
    wrong_group = await client.get("/v1/reports/speed-to-lead", params={"group_by": "planet"})
    assert wrong_group.status_code == 422 and wrong_group.json()["errors"][0]["field"] == "group_by"
    empty = (await client.get("/v1/reports/speed-to-lead", params={"from": "1999-01-01", "to": "1999-02-01"})).json()
    assert empty["groups"] == [] and empty["total"]["leads"] == 0 and empty["total"]["within_sla_pct"] is None
