"""Pipeline, revenue and cost per lead over a hand-built quarter (Q4 2026), every figure worked out below.

Reporting currency USD; rates set through the admin API: 1 EUR = 1.10 USD, no rate for GBP.

    lead  source/campaign    captured  MQL  CRM callbacks (amount)                     deal
    R1    google/brand       Oct 5     yes  opportunity 10000 EUR, converted 12000 EUR  won 13200 USD
    R2    google/brand       Oct 20    yes  opportunity 5000 USD                        open 5000 USD
    R3    linkedin/webinar   Nov 3     yes  opportunity 8000 EUR, closed_lost           lost
    R4    linkedin/webinar   Nov 15    yes  converted 3000 USD                          won 3000 USD
    R5    linkedin/webinar   Dec 1     no   -                                           -
    R6    google/brand       Dec 10    no   opportunity 1000 GBP (an opportunity is     open, no rate
                                            an MQL too: stages are cumulative)
    R7    google/brand       Sep 20    yes  converted 99999 USD                         outside the quarter

Spend (spread evenly over its days, both ends included):
    brand/google       Oct 1 - Dec 31 2026   9200 USD (JSON)    100/day: Q4 9200, November 3000
    webinar/linkedin   Nov 1 - Nov 30        3000 EUR (CSV)     3300 USD
    webinar/linkedin   Dec 1 - Jan 31 2027   6200 USD (CSV)     100/day: Q4 (Dec) 3100, November 0
    retarget/facebook  Oct 1 - Oct 31         500 USD (CSV)     a campaign with spend and no lead
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from leadflow_contracts import Attribution, LeadCaptured, LeadContact, LeadRouted, LeadScored, LeadTouched, RoutedOwner
from leadflow_kit.clock import FrozenClock

S = timedelta(seconds=1)
DEALS: dict[str, tuple[str, str, datetime, bool, list[tuple[str, str | None, str | None]]]] = {
    "R1": ("google", "brand", datetime(2026, 10, 5, 9, tzinfo=UTC), True,
           [("opportunity_created", "10000", "EUR"), ("converted", "12000", "EUR")]),
    "R2": ("google", "brand", datetime(2026, 10, 20, 9, tzinfo=UTC), True, [("opportunity_created", "5000", "USD")]),
    "R3": ("linkedin", "webinar", datetime(2026, 11, 3, 9, tzinfo=UTC), True,
           [("opportunity_created", "8000", "EUR"), ("closed_lost", "8000", "EUR")]),
    "R4": ("linkedin", "webinar", datetime(2026, 11, 15, 9, tzinfo=UTC), True, [("converted", "3000.00", "USD")]),
    "R5": ("linkedin", "webinar", datetime(2026, 12, 1, 9, tzinfo=UTC), False, []),
    "R6": ("google", "brand", datetime(2026, 12, 10, 9, tzinfo=UTC), False, [("opportunity_created", "1000", "GBP")]),
    "R7": ("google", "brand", datetime(2026, 9, 20, 9, tzinfo=UTC), True, [("converted", "99999", "USD")]),
}
QUARTER = {"from": "2026-10-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}
SPEND_CSV = ("utm_campaign,source,period_from,period_to,amount,currency\r\n"
             "webinar,linkedin,2026-11-01,2026-11-30,3000,EUR\r\n"
             "webinar,linkedin,2026-12-01,2027-01-31,6200.00,USD\r\n"
             "retarget,facebook,2026-10-01,2026-10-31,500,USD\r\n")


def _events(env: Any, lead_id: str, name: str) -> list[Any]:
    source, campaign, captured_at, mql, touches = DEALS[name]
    fill = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=captured_at,
                        contact=LeadContact(email=f"{name}@example.com"),
                        attribution=Attribution(utm_source=source, utm_campaign=campaign))
    scored = LeadScored(lead_id=lead_id, score=60, fit_grade="B", engagement_level=2, tier="warm", is_mql=mql,
                        model_version="v1", lifecycle_stage="mql" if mql else "lead")
    routed = LeadRouted(lead_id=lead_id, assignment_id=f"as-{name}", reason="test", tier="warm",
                        owner=RoutedOwner(rep_id="rep-ada", team_id="emea"))
    events = [env.lead_event(fill, lead_id, captured_at, captured_at, "capture"),
              env.lead_event(scored, lead_id, captured_at + S, captured_at, "scoring"),
              env.lead_event(routed, lead_id, captured_at + 2 * S, captured_at, "routing")]
    for n, (touch_type, amount, currency) in enumerate(touches, start=1):
        at = captured_at + timedelta(days=n)
        touched = LeadTouched(lead_id=lead_id, touch_id=f"{name}-{n}", touch_type=touch_type,  # type: ignore[arg-type]
                              occurred_at=at, rep_id="rep-ada",
                              amount=Decimal(amount) if amount else None, currency=currency)
        events.append(env.lead_event(touched, lead_id, at, captured_at, "routing"))
    return events


async def _send_quarter(env: Any) -> dict[str, str]:
    ids = {name: f"{name}-{env.new_lead_id()}" for name in DEALS}
    for name, lead_id in ids.items():
        for event in _events(env, lead_id, name):
            await env.send(event)

    async def settled() -> bool:
        rows = await env.fetch(
            "SELECT count(*) AS n FROM lead WHERE lead_id = ANY($1) AND first_routed_at IS NOT NULL AND"
            " (lead_id <> $2 OR lost_at IS NOT NULL) AND (lead_id <> $3 OR converted_at IS NOT NULL)",
            list(ids.values()), ids["R3"], ids["R1"])
        return bool(rows[0]["n"] == len(ids))

    await env.eventually(settled)
    # The last callback of each lead is on its timeline too (events of one lead are consumed in order).
    for name, lead_id in ids.items():
        touches = DEALS[name][4]
        if touches:
            amount = touches[-1][1]

            async def last_amount(lead_id: str = lead_id, amount: str | None = amount) -> bool:
                rows = await env.fetch("SELECT deal_amount FROM lead WHERE lead_id = $1", lead_id)
                return bool(rows and rows[0]["deal_amount"] == Decimal(amount or "0"))

            await env.eventually(last_amount)
    return ids


async def _record_spend(client: Any) -> None:
    rates = await client.put("/v1/admin/currency-rates", json={"rates": {"EUR": "1.10"}})
    assert rates.status_code == 200, rates.text
    # In force on every day; read back at today's (the clock's) day.
    assert rates.json() == {"reporting_currency": "USD", "on": "2027-01-05", "effective_from": None,
                            "rates": {"EUR": "1.1"}, "tables": [{"effective_from": None, "rates": {"EUR": "1.1"}}]}
    created = await client.post("/v1/admin/campaigns/spend", json={
        "utm_campaign": "brand", "source": "google", "period_from": "2026-10-01", "period_to": "2026-12-31",
        "amount": "9200", "currency": "USD"})
    assert created.status_code == 201, created.text
    assert created.json()["amount"] == "9200" and created.json()["id"].startswith("spd_")
    imported = await client.post("/v1/admin/campaigns/spend/import", content=SPEND_CSV,
                                 headers={"Content-Type": "text/csv"})
    assert imported.status_code == 201, imported.text
    assert imported.json() == {"imported": 3}


def _money(group: dict[str, Any]) -> dict[str, Any]:
    return {k: group[k] for k in ("pipeline", "revenue", "deals", "win_rate", "average_deal_size", "spend",
                                  "cost_per_lead", "cost_per_mql", "cost_per_opportunity", "return_on_spend")}


async def test_pipeline_revenue_and_cost_per_lead_of_a_quarter(sla_env: Any, apps: Any) -> None:
    _, client = await apps.start(FrozenClock(datetime(2027, 1, 5, tzinfo=UTC)), scheduler_interval_seconds=3600)
    await _send_quarter(sla_env)
    await _record_spend(client)

    report = (await client.get("/v1/reports/funnel", params=QUARTER)).json()
    assert report["reporting_currency"] == "USD" and report["spend_without_rate"] == 0
    total = report["total"]
    assert total["counts"] == {"captured": 6, "mql": 5, "accepted": 5, "sql": 5, "opportunity": 5, "converted": 2}
    # Won: 12000 EUR * 1.10 + 3000 = 16200; open: R2's 5000 (R6's GBP has no rate); spend 9200+3300+3100+500.
    assert _money(total) == {
        "pipeline": "5000.00", "revenue": "16200.00",
        "deals": {"open": 2, "won": 2, "lost": 1, "without_rate": 1},
        "win_rate": 0.6667, "average_deal_size": "8100.00", "spend": "16100.00",
        "cost_per_lead": "2683.33", "cost_per_mql": "3220.00", "cost_per_opportunity": "3220.00",
        "return_on_spend": "1.01",
    }

    by_source = (await client.get("/v1/reports/funnel", params={**QUARTER, "group_by": "source"})).json()
    sources = {g["group"]: g for g in by_source["groups"]}
    assert list(sources) == ["facebook", "google", "linkedin"]
    assert sources["google"]["counts"] == {"captured": 3, "mql": 3, "accepted": 3, "sql": 3, "opportunity": 3,
                                           "converted": 1}
    assert _money(sources["google"]) == {
        "pipeline": "5000.00", "revenue": "13200.00", "deals": {"open": 2, "won": 1, "lost": 0, "without_rate": 1},
        "win_rate": 1.0, "average_deal_size": "13200.00", "spend": "9200.00",
        "cost_per_lead": "3066.67", "cost_per_mql": "3066.67", "cost_per_opportunity": "3066.67",
        "return_on_spend": "1.43",
    }
    assert _money(sources["linkedin"]) == {
        "pipeline": "0.00", "revenue": "3000.00", "deals": {"open": 0, "won": 1, "lost": 1, "without_rate": 0},
        "win_rate": 0.5, "average_deal_size": "3000.00", "spend": "6400.00",
        "cost_per_lead": "2133.33", "cost_per_mql": "3200.00", "cost_per_opportunity": "3200.00",
        "return_on_spend": "0.47",
    }
    assert sources["facebook"]["counts"]["captured"] == 0
    assert _money(sources["facebook"]) == {
        "pipeline": "0.00", "revenue": "0.00", "deals": {"open": 0, "won": 0, "lost": 0, "without_rate": 0},
        "win_rate": None, "average_deal_size": None, "spend": "500.00",
        "cost_per_lead": None, "cost_per_mql": None, "cost_per_opportunity": None, "return_on_spend": "0.00",
    }

    by_campaign = (await client.get("/v1/reports/funnel", params={**QUARTER, "group_by": "utm_campaign"})).json()
    campaigns = {g["group"]: g for g in by_campaign["groups"]}
    assert _money(campaigns["brand"]) == _money(sources["google"])
    assert _money(campaigns["webinar"]) == _money(sources["linkedin"])
    assert _money(campaigns["retarget"]) == _money(sources["facebook"])

    # Spend belongs to campaigns and sources, not to teams: the groups have none, the total has all of it.
    by_team = (await client.get("/v1/reports/funnel", params={**QUARTER, "group_by": "team"})).json()
    assert [(g["group"], g["spend"], g["revenue"]) for g in by_team["groups"]] == [("emea", None, "16200.00")]
    assert by_team["total"]["spend"] == "16100.00"

    # November alone: R3 and R4; brand's 30 days of 100, webinar's November EUR spend, nothing of December's.
    november = (await client.get("/v1/reports/funnel", params={
        "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "group_by": "source"})).json()
    assert {g["group"]: (g["counts"]["captured"], g["spend"], g["cost_per_lead"]) for g in november["groups"]} == {
        "google": (0, "3000.00", None), "linkedin": (2, "3300.00", "1650.00")}
    assert november["total"]["spend"] == "6300.00" and november["total"]["return_on_spend"] == "0.48"

    await _check_csv_agrees(client, by_source)


async def test_a_rate_table_from_a_day_on_leaves_the_days_before_at_their_rates(sla_env: Any, apps: Any) -> None:
    """R1 was won on Oct 7 (12000 EUR); webinar's 3000 EUR spend is 100 EUR a day of November."""
    # The module's database holds the other tests' quarter too: this test's figures are of its own.
    for table in ("lead", "campaign_spend", "currency_rate"):
        await sla_env.fetch(f"DELETE FROM {table}")
    _, client = await apps.start(FrozenClock(datetime(2027, 1, 5, tzinfo=UTC)), scheduler_interval_seconds=3600)
    await _send_quarter(sla_env)
    await _record_spend(client)

    async def revenue_and_spend() -> tuple[str, str]:
        total = (await client.get("/v1/reports/funnel", params=QUARTER)).json()["total"]
        return total["revenue"], total["spend"]

    assert await revenue_and_spend() == ("16200.00", "16100.00")
    # EUR at 1.20 from Nov 16: the won deal keeps October's rate; half of November's spend converts at 1.20.
    later = await client.put("/v1/admin/currency-rates",
                             json={"rates": {"EUR": "1.20"}, "effective_from": "2026-11-16"})
    assert later.status_code == 200, later.text
    assert later.json() == {
        "reporting_currency": "USD", "on": "2026-11-16", "effective_from": "2026-11-16", "rates": {"EUR": "1.2"},
        "tables": [{"effective_from": None, "rates": {"EUR": "1.1"}},
                   {"effective_from": "2026-11-16", "rates": {"EUR": "1.2"}}]}
    # Spend: 1500 EUR at 1.10 and 1500 at 1.20 is 3450, not 3300.
    assert await revenue_and_spend() == ("16200.00", "16250.00")
    # EUR at 1.00 from Oct 1: the deal won on Oct 7 is 12000; November's first half converts at 1.00.
    assert (await client.put("/v1/admin/currency-rates",
                             json={"rates": {"EUR": "1", "GBP": "1.25"}, "effective_from": "2026-10-01"})).is_success
    assert await revenue_and_spend() == ("15000.00", "16100.00")
    on_day = (await client.get("/v1/admin/currency-rates", params={"on": "2026-10-15"})).json()
    assert (on_day["effective_from"], on_day["rates"]) == ("2026-10-01", {"EUR": "1", "GBP": "1.25"})
    today = (await client.get("/v1/admin/currency-rates")).json()
    assert (today["on"], today["effective_from"], today["rates"]) == ("2027-01-05", "2026-11-16", {"EUR": "1.2"})
    # GBP has a rate only in the October table: R6's open deal is valued at today's table, which has none.
    assert (await client.get("/v1/reports/funnel", params=QUARTER)).json()["total"]["deals"]["without_rate"] == 1

    assert (await client.delete("/v1/admin/currency-rates/2026-10-01")).status_code == 204
    assert (await client.delete("/v1/admin/currency-rates/2026-10-01")).status_code == 404
    # The every-day table is no dated table: only a PUT without a day replaces it.
    assert (await client.delete("/v1/admin/currency-rates/0001-01-01")).status_code == 404
    assert (await client.get("/v1/admin/currency-rates")).json()["tables"][0]["effective_from"] is None
    assert await revenue_and_spend() == ("16200.00", "16250.00")
    # Without a day, the table replaces every table.
    assert (await client.put("/v1/admin/currency-rates", json={"rates": {"EUR": "1.10"}})).json()["tables"] == [
        {"effective_from": None, "rates": {"EUR": "1.1"}}]
    assert await revenue_and_spend() == ("16200.00", "16100.00")

    empty = await client.put("/v1/admin/currency-rates", json={"rates": {}, "effective_from": "2026-12-01"})
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "rates"
    too_early = await client.put("/v1/admin/currency-rates",
                                 json={"rates": {"EUR": "1"}, "effective_from": "0001-01-01"})
    assert too_early.status_code == 422 and too_early.json()["errors"][0]["field"] == "effective_from"
    assert (await client.get("/v1/admin/currency-rates")).json()["tables"] == [
        {"effective_from": None, "rates": {"EUR": "1.1"}}]


async def _check_csv_agrees(client: Any, as_json: dict[str, Any]) -> None:
    exported = await client.get("/v1/reports/funnel", params={**QUARTER, "group_by": "source", "format": "csv"})
    assert exported.status_code == 200
    rows = {r["group"]: r for r in csv.DictReader(io.StringIO(exported.text, newline=""))}
    for group in [*as_json["groups"], as_json["total"]]:
        row = rows[group["group"]]
        assert row["pipeline"] == group["pipeline"] and row["revenue"] == group["revenue"]
        assert [row[f"deals_{k}"] for k in ("open", "won", "lost", "without_rate")] == [
            str(group["deals"][k]) for k in ("open", "won", "lost", "without_rate")]
        assert row["win_rate"] == ("" if group["win_rate"] is None else f"{group['win_rate']:g}")
        for name in ("average_deal_size", "spend", "cost_per_lead", "cost_per_mql", "cost_per_opportunity",
                     "return_on_spend"):
            assert row[name] == (group[name] or ""), name


async def test_spend_and_rates_refuse_bad_input_and_an_import_is_all_or_nothing(sla_env: Any, apps: Any) -> None:
    _, client = await apps.start(FrozenClock(datetime(2027, 1, 5, tzinfo=UTC)), scheduler_interval_seconds=3600)
    before = (await client.get("/v1/admin/campaigns/spend", params={"utm_campaign": "broken"})).json()
    bad_csv = ("utm_campaign,source,period_from,period_to,amount,currency\n"
               "broken,google,2026-10-01,2026-10-31,100,USD\n"
               "broken,google,2026-10-01,2026-09-30,100,USD\n"
               "broken,google,2026-10-01,2026-10-31,-5,EUX\n")
    refused = await client.post("/v1/admin/campaigns/spend/import", content=bad_csv,
                                headers={"Content-Type": "text/csv"})
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["line 3: period_to", "line 4: amount",
                                                             "line 4: currency"]
    after = (await client.get("/v1/admin/campaigns/spend", params={"utm_campaign": "broken"})).json()
    assert after == before == []
    recorded = (await client.post("/v1/admin/campaigns/spend", json={
        "utm_campaign": "broken", "source": "google", "period_from": "2026-10-01", "period_to": "2026-10-01",
        "amount": "1", "currency": "USD"})).json()
    assert (await client.delete(f"/v1/admin/campaigns/spend/{recorded['id']}")).status_code == 204
    assert (await client.delete(f"/v1/admin/campaigns/spend/{recorded['id']}")).status_code == 404
    assert (await client.get("/v1/admin/campaigns/spend", params={"utm_campaign": "broken"})).json() == []

    missing = await client.post("/v1/admin/campaigns/spend/import", content="campaign,amount\nx,1\n",
                                headers={"Content-Type": "text/csv"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "line 1"
    one = await client.post("/v1/admin/campaigns/spend", json={
        "utm_campaign": "x", "source": "google", "period_from": "2026-10-01", "period_to": "2026-10-31",
        "amount": "1e400", "currency": "USD"})
    assert one.status_code == 422 and one.json()["errors"][0]["field"] == "amount"
    usd_rate = await client.put("/v1/admin/currency-rates", json={"rates": {"USD": "1", "EUR": "1.1"}})
    assert usd_rate.status_code == 422 and usd_rate.json()["errors"][0]["field"] == "rates.USD"
    zero_rate = await client.put("/v1/admin/currency-rates", json={"rates": {"EUR": "0"}})
    assert zero_rate.status_code == 422
    unknown = await client.put("/v1/admin/currency-rates", json={"rates": {"XYZ": "2"}})
    assert unknown.status_code == 422
