"""The marketing and sales dashboard against a real Prometheus (Debian's binary) scraping real enrichment and
sla services: a few leads sent through Kafka (captured, scored, routed, touched, one SLA breached), then
every panel's query must evaluate without error and answer the series the reports API gives for the same
leads (sla's funnel report, enrichment's data-quality report). sla runs two replicas, as the Helm chart
does: each reports the whole funnel (read from its database), and a panel must count it once."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

import leadflow_enrichment
import leadflow_sla
from leadflow_contracts import (
    Attribution,
    Event,
    LeadCaptured,
    LeadContact,
    LeadRouted,
    LeadScored,
    LeadTouched,
    RoutedOwner,
    new_event,
)
from leadflow_enrichment.app import create_app as create_enrichment
from leadflow_enrichment.settings import Settings as EnrichmentSettings
from leadflow_kit.app import app_deps, app_runtime
from leadflow_kit.clock import FrozenClock
from leadflow_kit.migrations import upgrade
from leadflow_sla.app import create_app as create_sla
from leadflow_sla.settings import Settings as SlaSettings
from leadflow_stack.procs import free_port
from leadflow_stack.testing import bearer, eventually, produce, service_settings, serving

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "leadflow.rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "marketing-sales.json"
ADMIN = bearer()
T = datetime.now(UTC).replace(microsecond=0)
S = timedelta(seconds=1)

# name: (form, source, campaign, email, team, tier, scored stage, touched after seconds)
LEADS = {
    "ada": ("mk-demo", "google", "spring", "ada@globex.com", "emea", "hot", "mql", 120),
    "bob": ("mk-demo", "google", "spring", "bob@gmail.com", "amer", "cold", "lead", 1800),
    # Touched after the hot SLA's 5 minutes: breached.
    "eve": ("mk-broken", "linkedin", "fall", "not-an-email", "emea", "hot", "mql", 600),
}


def journey(name: str, lead_id: str) -> list[Event[Any]]:
    form, source, campaign, email, team, tier, stage, _ = LEADS[name]
    captured = LeadCaptured(lead_id=lead_id, form_key=form, submitted_at=T, contact=LeadContact(email=email),
                            attribution=Attribution(utm_source=source, utm_campaign=campaign))
    scored = LeadScored(lead_id=lead_id, score=50, fit_grade="B", engagement_level=2, tier=tier,
                        is_mql=stage == "mql", model_version="v1", lifecycle_stage=stage)
    routed = LeadRouted(lead_id=lead_id, assignment_id=f"as-{lead_id}", reason="test", tier=tier,
                        owner=RoutedOwner(rep_id=f"rep-{name}", team_id=team))
    return [new_event(data, source=by, subject=lead_id, time=T + n * S / 2, lead_captured_at=T)
            for n, (data, by) in enumerate(((captured, "capture"), (scored, "scoring"), (routed, "routing")))]


def touch(name: str, lead_id: str) -> Event[Any]:
    at = T + LEADS[name][7] * S
    data = LeadTouched(lead_id=lead_id, touch_id=f"t-{lead_id}", touch_type="contacted", occurred_at=at)
    return new_event(data, source="routing", subject=lead_id, time=at, lead_captured_at=T)


def deal(lead_id: str, touch_type: str, amount: str) -> Event[Any]:
    at = T + 3600 * S
    data = LeadTouched(lead_id=lead_id, touch_id=f"{touch_type}-{lead_id}", touch_type=touch_type,
                       occurred_at=at, amount=Decimal(amount), currency="USD")
    return new_event(data, source="routing", subject=lead_id, time=at, lead_captured_at=T)


@asynccontextmanager
async def served(app: FastAPI, port: int, *, assigned: bool = True) -> AsyncIterator[str]:
    """The app on ``port``; with ``assigned``, once its consumer has its partitions (a replica joining a group
    whose partitions another replica holds may get none)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                                           timeout_graceful_shutdown=1))
    async with serving(server, what=app.title):
        runner = app_runtime(app).runner
        assert runner is not None
        if assigned:
            await asyncio.wait_for(runner.assigned.wait(), 30)
        yield f"http://127.0.0.1:{port}"


@asynccontextmanager
async def prometheus(targets: dict[str, list[int]]) -> AsyncIterator[str]:
    """Prometheus scraping each job's replicas (their ports) every second, with the project's rules."""
    binary = shutil.which("prometheus")
    assert binary, "the prometheus binary (Debian package `prometheus`) is required"
    workdir = Path(tempfile.mkdtemp(prefix="marketing-prometheus-"))
    scrape = "".join(f"  - job_name: leadflow-{job}\n    static_configs:\n      - targets: "
                     f"[{', '.join(repr(f'127.0.0.1:{port}') for port in ports)}]\n"
                     for job, ports in targets.items())
    (workdir / "prometheus.yml").write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                                            f"rule_files:\n  - {RULES}\nscrape_configs:\n{scrape}")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


async def new_database(infra: Any, package: Any, name: str) -> str:
    url: str = await infra.new_database(name)
    await asyncio.to_thread(upgrade, Path(package.__file__).parent / "migrations", url)
    return url


async def test_every_panel_answers_what_the_reports_say(infra: Any) -> None:
    prefix = infra.new_topic_prefix("marketing")
    await infra.create_topics(prefix, partitions=1)
    common = {"bootstrap_servers": infra.bootstrap_servers, "topic_prefix": prefix}
    enrichment_port, sla_port, sla_replica_port = free_port(), free_port(), free_port()
    enrichment = create_enrichment(service_settings(
        EnrichmentSettings, database_url=await new_database(infra, leadflow_enrichment, "enrichment"),
        port=enrichment_port, data_quality_refresh_seconds=0.5, **common))
    sla_database = await new_database(infra, leadflow_sla, "sla")
    clock = FrozenClock(T)

    def sla_replica(port: int) -> FastAPI:
        return create_sla(service_settings(SlaSettings, database_url=sla_database, port=port,
                                           scheduler_interval_seconds=3600, funnel_gauge_refresh_seconds=0.5,
                                           **common), clock)

    sla = sla_replica(sla_port)
    async with AsyncExitStack() as stack:
        enrichment_url = await stack.enter_async_context(served(enrichment, enrichment_port))
        sla_url = await stack.enter_async_context(served(sla, sla_port))
        prom = await stack.enter_async_context(prometheus({"enrichment": [enrichment_port],
                                                           "sla": [sla_port, sla_replica_port]}))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10, headers=ADMIN))
        await send_the_leads(infra, prefix, sla, clock, sla_database, sla_url)
        # The second replica joins once the first has taken every event (its group's rebalance cannot hold
        # them up); its gauges read the same database.
        await stack.enter_async_context(served(sla_replica(sla_replica_port), sla_replica_port, assigned=False))

        async def all_fills_enriched() -> bool:
            report = (await http.get(f"{enrichment_url}/v1/reports/data-quality")).json()
            return bool(report["total"]["fills"] == len(LEADS))

        await eventually(all_fills_enriched, timeout=30)
        expected = await expected_series(http, sla_url, enrichment_url)
        panels = dashboard_queries()
        assert set(expected) == {key for key, _ in panels}, "every panel's series are worked out"

        async def both_replicas_report() -> bool:
            query = 'count(count by (instance) (leadflow_funnel_leads{stage="captured"}))'
            answer = (await http.get(f"{prom}/api/v1/query", params={"query": query})).json()
            return [number(r["value"][1]) for r in answer["data"]["result"]] == [2]

        await eventually(both_replicas_report, timeout=30, interval=0.5)

        async def panels_not_as_expected() -> list[str]:
            wrong = []
            for key, expr in panels:
                answer = (await http.get(f"{prom}/api/v1/query", params={"query": expr})).json()
                assert answer["status"] == "success", (key, expr, answer)
                got = {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): number(r["value"][1])
                       for r in answer["data"]["result"]}
                if got != expected[key]:
                    wrong.append(f"{key}: {got} != {expected[key]}")
            return wrong

        async def settled() -> bool:
            return not await panels_not_as_expected()

        try:
            await eventually(settled, timeout=30, interval=0.5)
        except AssertionError:
            raise AssertionError("\n".join(await panels_not_as_expected())) from None


async def send_the_leads(
    infra: Any, prefix: str, sla: FastAPI, clock: FrozenClock, sla_database: str, sla_url: str
) -> None:
    ids = {name: f"{name}-{T.timestamp():.0f}" for name in LEADS}
    await produce(infra.bootstrap_servers, prefix, [e for name, lead_id in ids.items()
                                                    for e in journey(name, lead_id)])
    await clocks(infra, sla_database, list(ids.values()), "open")
    await produce(infra.bootstrap_servers, prefix, [touch(name, ids[name]) for name in ("ada", "bob")])
    await clocks(infra, sla_database, [ids["ada"], ids["bob"]], "stopped")
    clock.set(T + 400 * S)
    await app_deps(sla).scheduler.fire_due()
    await produce(infra.bootstrap_servers, prefix, [touch("eve", ids["eve"])])
    await clocks(infra, sla_database, [ids["eve"]], "stopped")
    # Money: Ada's deal is open pipeline, Eve's is won; the spring campaign spent 300 on the window's days.
    await produce(infra.bootstrap_servers, prefix, [deal(ids["ada"], "opportunity_created", "5000"),
                                                    deal(ids["eve"], "converted", "1200")])
    await deals(infra, sla_database, [ids["ada"], ids["eve"]])
    async with httpx.AsyncClient(timeout=10, headers=ADMIN) as http:
        spent = await http.post(f"{sla_url}/v1/admin/campaigns/spend", json={
            "utm_campaign": "spring", "source": "google", "period_from": T.date().isoformat(),
            "period_to": T.date().isoformat(), "amount": "300", "currency": "USD"})
        assert spent.status_code == 201, spent.text


async def clocks(infra: Any, database: str, lead_ids: list[str], status: str) -> None:
    await all_found(infra, database, "SELECT count(*) FROM sla_clock WHERE lead_id = ANY($1) AND status = $2",
                    lead_ids, status)


async def deals(infra: Any, database: str, lead_ids: list[str]) -> None:
    """sla has taken the leads' deals (it fetches in batches of up to a tenth of a second)."""
    await all_found(infra, database, "SELECT count(*) FROM lead WHERE lead_id = ANY($1) AND deal_amount IS NOT NULL",
                    lead_ids)


async def all_found(infra: Any, database: str, count: str, lead_ids: list[str], *args: Any) -> None:
    async def all_there() -> bool:
        conn = await asyncpg.connect(infra.asyncpg_dsn(database))
        try:
            found = await conn.fetchval(count, lead_ids, *args)
        finally:
            await conn.close()
        return bool(found == len(lead_ids))

    await eventually(all_there, timeout=30)


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, or title: legend for a panel of several queries; query) of every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [(panel["title"] if len(panel["targets"]) == 1 else f"{panel['title']}: {target['legendFormat']}",
             target["expr"]) for panel in dashboard["panels"] if panel["type"] != "row" for target in panel["targets"]]


def number(value: str) -> float | None:
    """A sample's value rounded as the reports round rates; NaN (0 / 0) as None."""
    parsed = float(value)
    return None if math.isnan(parsed) else round(parsed, 4)


def series(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


async def expected_series(http: httpx.AsyncClient, sla_url: str, enrichment_url: str) -> dict[str, Any]:
    """Each checked panel's series as the reports API works them out for the same leads."""
    window = {"from": (T - timedelta(days=1)).isoformat(), "to": (T + timedelta(days=1)).isoformat()}

    async def funnel(group_by: str) -> dict[str, dict[str, Any]]:
        answer = (await http.get(f"{sla_url}/v1/reports/funnel", params={**window, "group_by": group_by})).json()
        return {group["group"]: group for group in answer["groups"]}

    by_source, by_campaign, by_team = await funnel("source"), await funnel("utm_campaign"), await funnel("team")
    quality = (await http.get(f"{enrichment_url}/v1/reports/data-quality",
                              params={**window, "group_by": "form"})).json()
    forms = {row["group"]: row for row in quality["rows"]}
    assert set(forms) == {"mk-demo", "mk-broken"} and set(by_team) == {"emea", "amer"}
    stages = ("captured", "mql", "accepted", "sql", "opportunity", "converted")
    total = {stage: sum(g["counts"][stage] for g in by_source.values()) for stage in stages}
    assert total["captured"] == 3
    assert (by_source["google"]["pipeline"], by_source["linkedin"]["revenue"]) == ("5000.00", "1200.00")
    assert by_campaign["spring"]["cost_per_lead"] == "150.00"
    rates = {"captured→MQL": ("mql", "captured"), "MQL→SQL": ("sql", "mql"), "SQL→opportunity": ("opportunity", "sql"),
             "opportunity→customer": ("converted", "opportunity"), "captured→customer": ("converted", "captured")}
    return {
        "Funnel by stage": {series(stage=stage): float(total[stage]) for stage in stages},
        # A rate over no leads (no opportunity yet) is no number: Prometheus answers NaN.
        **{f"Conversion rates: {name}": {series(): round(total[part] / total[whole], 4) if total[whole] else None}
           for name, (part, whole) in rates.items()},
        "MQL rate by source": {series(source=name): round(g["counts"]["mql"] / g["counts"]["captured"], 4)
                               for name, g in by_source.items()},
        "Customers by source": {series(source=name): float(g["counts"]["converted"]) for name, g in by_source.items()},
        "Leads by campaign": {series(campaign=name): float(g["counts"]["captured"])
                              for name, g in by_campaign.items()},
        "MQL rate by campaign": {series(campaign=name): round(g["counts"]["mql"] / g["counts"]["captured"], 4)
                                 for name, g in by_campaign.items()},
        "Pipeline by source": {series(source=name): float(g["pipeline"]) for name, g in by_source.items()},
        "Revenue by source": {series(source=name): float(g["revenue"]) for name, g in by_source.items()},
        "Cost per lead by campaign": {series(campaign=name): float(g["cost_per_lead"])
                                      for name, g in by_campaign.items() if g["cost_per_lead"] is not None},
        "Speed to lead by team (median)": {series(team=name): g["speed_to_lead_seconds"]["median"]
                                           for name, g in by_team.items()},
        "Speed to lead by team (p90)": {series(team=name): g["speed_to_lead_seconds"]["p90"]
                                        for name, g in by_team.items()},
        "SLA compliance by team": {series(team=name): round(g["sla"]["compliance_pct"] / 100, 4)
                                   for name, g in by_team.items()},
        "Fills by form": {series(form=name): float(row["fills"]) for name, row in forms.items()},
        "Invalid email and phone by form": {series(form=name, figure=figure): row[f"{figure}_rate"]
                                            for name, row in forms.items()
                                            for figure in ("invalid_email", "invalid_phone")},
        "Free, disposable and role addresses, duplicates, account matches by form": {
            series(form=name, figure=figure): row[f"{figure}_rate"] for name, row in forms.items()
            for figure in ("free_email", "disposable_email", "role_address", "duplicate", "account_match")},
        "Field completeness by form": {series(form=name, field=field): row["completeness"][field]
                                       for name, row in forms.items()
                                       for field in ("email", "phone", "company", "job_title", "country")},
        # No provider is configured: no fill asked one, so there is no rate to show.
        "Provider success by form and source": {},
    }
