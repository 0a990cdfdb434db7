"""Scale-out proof: two replicas of every consumer service (enrichment, scoring, routing, sla) on one
stack carry 2,000 form fills through capture. Each lead is routed exactly once, round-robin stays
exact within each team across the two routing replicas, and no event is handled twice. A team whose
handling is held up (another transaction holds its row) does not delay the other team's leads."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from e2e_support import ADMIN_KEY, Pipeline, dead_letter_counts, events_on, eventually, running_pipeline
from prometheus_client.parser import text_string_to_metric_families

from leadflow_contracts import Event, EventData, LeadRouted, topics
from leadflow_stack.procs import free_port

# Two thousand leads through nine processes on a two-core box: minutes, not the suite's usual five.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LEADS = 2000
REPLICATED = ("enrichment", "scoring", "routing", "sla")
# The topics whose every event each replicated service handles (one event type per topic).
HANDLED = {
    "enrichment": (topics.CAPTURED,),
    "scoring": (topics.ENRICHED,),
    "routing": (topics.SCORED,),
    "sla": (topics.CAPTURED, topics.ENRICHED, topics.SCORED, topics.ROUTED),
}
# German leads go to team emea, every other to the demo team sales.
TEAMS = {
    "sales": ("rep-ada", "rep-grace", "rep-linus"),
    "emea": ("rep-emea-1", "rep-emea-2", "rep-emea-3", "rep-emea-4"),
}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pipeline(infra: Any) -> AsyncIterator[Pipeline]:
    # Every fill comes from 127.0.0.1, which capture's per-address limit would otherwise throttle;
    # four partitions, so each of two replicas can own two.
    overrides = {"capture": {"RATE_LIMIT_EXEMPT_IPS": '["127.0.0.1"]'}}
    async with running_pipeline(infra, overrides, partitions=4) as started:
        yield started


@asynccontextmanager
async def second_replicas(pipeline: Pipeline, names: tuple[str, ...]) -> AsyncIterator[dict[str, str]]:
    """Start a second process of each service, with the first one's settings (database, topics) on a
    port of its own; yields each one's URL and stops them on the way out."""
    services = pipeline.infra.stack.services
    started: list[asyncio.subprocess.Process] = []
    urls: dict[str, str] = {}
    try:
        for name in names:
            config = dataclasses.replace(services.config(name), port=free_port())
            log_path = pipeline.infra.log_dir / f"{name}.replica.log"
            with log_path.open("ab") as log_file:
                started.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", f"leadflow_{name}", "serve", stdin=subprocess.DEVNULL,
                    stdout=log_file, stderr=subprocess.STDOUT, env=config.env(services.marker_root),
                    start_new_session=True,
                ))
            urls[name] = config.url
        for url in urls.values():
            async def ready(url: str = url) -> bool:
                try:
                    return (await pipeline.client.get(f"{url}/readyz")).status_code == 200
                except Exception:
                    return False

            await eventually(ready, timeout=90, interval=0.2)
        yield urls
    finally:
        for proc in started:
            proc.terminate()
        for proc in started:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def arrange_two_teams(pipeline: Pipeline) -> None:
    """Team emea beside the demo's sales, German leads to it (each test may call it: it is there once)."""
    routing = pipeline.urls["routing"]
    response = await pipeline.client.post(f"{routing}/v1/admin/teams", headers=ADMIN,
                                          json={"id": "emea", "name": "EMEA"})
    assert response.status_code in (201, 409), response.text
    for rep_id in TEAMS["emea"]:
        response = await pipeline.client.post(f"{routing}/v1/admin/reps", headers=ADMIN,
                                              json={"id": rep_id, "name": rep_id, "team_id": "emea"})
        assert response.status_code in (201, 409), response.text
    rules = {"rules": [
        {"id": "germany", "conditions": [{"field": "country", "op": "eq", "value": "DE"}], "team_id": "emea"},
        {"id": "everyone", "team_id": "sales"},
    ], "handoff": "first_fill"}
    response = await pipeline.client.post(f"{routing}/v1/admin/routing-rules", headers=ADMIN, json=rules)
    assert response.status_code == 201, response.text


async def submit_all(pipeline: Pipeline, count: int = LEADS, tag: str = "buyer") -> list[str]:
    """``count`` fills, every other one from Germany (team emea); their lead ids in that order."""
    slots = asyncio.Semaphore(16)

    async def one(n: int) -> str:
        async with slots:
            return await pipeline.submit(
                email=f"{tag}{n}@firm{n}.example.com", first_name=f"Buyer{n}", last_name="Scale",
                company=f"Firm {n}", country="DE" if n % 2 else "US", job_title="Head of Operations",
            )

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def processed(pipeline: Pipeline, url: str, topic: str) -> float:
    """How many events of ``topic`` the service at ``url`` handled (its inbox took them)."""
    text = (await pipeline.client.get(f"{url}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text) if family.name == "leadflow_events_consumed"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("topic") == f"{pipeline.topic_prefix}{topic}"
        and sample.labels.get("outcome") == "processed"
    )


def decision(event: Event[EventData]) -> LeadRouted:
    """The routing decision a leads.routed event carries (that topic holds nothing else)."""
    assert isinstance(event.data, LeadRouted), event.data
    return event.data


async def test_two_replicas_of_every_consumer_route_2000_leads_once_each_and_fairly(pipeline: Pipeline) -> None:
    await arrange_two_teams(pipeline)
    async with second_replicas(pipeline, REPLICATED) as replicas:
        lead_ids = await submit_all(pipeline)

        async def all_delivered() -> bool:
            return set(lead_ids) <= set(pipeline.receiver.lead_ids())

        await eventually(all_delivered, timeout=300, interval=1.0)
        await asyncio.sleep(2)  # anything extra would show up now
        handled = {
            (name, topic): [await processed(pipeline, url, topic) for url in (pipeline.urls[name], replicas[name])]
            for name, handled_topics in HANDLED.items() for topic in handled_topics
        }

    assert len(set(lead_ids)) == LEADS
    # A hot lead's SLA (five minutes) may breach on a slow box and re-route it; that is a second decision,
    # not the first one made twice.
    routed = [event for event in await events_on(pipeline, topics.ROUTED) if not decision(event).reroute]
    assert Counter(event.subject for event in routed) == Counter(lead_ids), "each lead routed exactly once"
    per_team: dict[str, Counter[str]] = {team: Counter() for team in TEAMS}
    for event in routed:
        owner = decision(event).owner
        assert owner is not None and owner.team_id in TEAMS, event.data
        per_team[owner.team_id][owner.rep_id] += 1
    for team, reps in TEAMS.items():
        counts = per_team[team]
        assert sorted(counts) == sorted(reps), counts
        assert max(counts.values()) - min(counts.values()) <= 1, f"round-robin in {team} is off: {counts}"
    assert sum(per_team["emea"].values()) == LEADS // 2

    webhooks = Counter(delivery["payload"]["data"]["lead_id"] for delivery in pipeline.receiver.deliveries
                       if not delivery["payload"]["data"]["routing"]["reroute"])
    assert all(webhooks[lead_id] == 1 for lead_id in lead_ids), "each lead's webhook delivered once"

    for (name, topic), by_replica in handled.items():
        on_topic = len(await events_on(pipeline, topic))
        assert sum(by_replica) == on_topic, f"{name} handled {by_replica} of {on_topic} {topic} events"
        assert all(n > 0 for n in by_replica), f"one {name} replica did all the {topic} work: {by_replica}"
    assert not any((await dead_letter_counts(pipeline)).values())


async def test_a_team_held_up_on_one_replica_does_not_delay_the_other_teams_leads(pipeline: Pipeline) -> None:
    """Another transaction holds team emea's row (as a slow handling of that team, or an admin's long
    transaction, would) while 300 fills arrive, half of them German: the sales team's leads all reach
    the CRM meanwhile, through both routing replicas; none of emea's does. Once the row is free, emea's
    leads are routed too, each once, round-robin still exact."""
    await arrange_two_teams(pipeline)
    config = pipeline.infra.stack.services.config("routing")
    assert config is not None
    holder = await asyncpg.connect(config.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with second_replicas(pipeline, REPLICATED):
            holding = holder.transaction()
            await holding.start()
            await holder.execute("SELECT id FROM team WHERE id = 'emea' FOR UPDATE")
            lead_ids = await submit_all(pipeline, 300, tag="held")
            sales_ids, emea_ids = set(lead_ids[0::2]), set(lead_ids[1::2])

            async def sales_delivered() -> bool:
                return sales_ids <= set(pipeline.receiver.lead_ids())

            await eventually(sales_delivered, timeout=180, interval=0.5)
            await asyncio.sleep(2)  # an emea lead delivered now would show up
            delivered_while_held = set(pipeline.receiver.lead_ids()) & set(lead_ids)
            parked_while_held = await holder.fetchval("SELECT count(*) FROM parked_lead")
            await holding.rollback()

            async def all_delivered() -> bool:
                return set(lead_ids) <= set(pipeline.receiver.lead_ids())

            await eventually(all_delivered, timeout=180, interval=0.5)
            await asyncio.sleep(2)
        parked_after = await holder.fetchval("SELECT count(*) FROM parked_lead")
    finally:
        await holder.close()

    assert delivered_while_held == sales_ids, "an emea lead went through while its team was held"
    assert parked_while_held == len(emea_ids)
    assert parked_after == 0
    routed = [event for event in await events_on(pipeline, topics.ROUTED) if not decision(event).reroute]
    ours = Counter(event.subject for event in routed if event.subject in set(lead_ids))
    assert ours == Counter(lead_ids), "each lead routed exactly once"
    per_team: dict[str, Counter[str]] = {team: Counter() for team in TEAMS}
    for event in routed:
        owner = decision(event).owner
        if owner is not None and owner.team_id in TEAMS:
            per_team[owner.team_id][owner.rep_id] += 1
    for team in TEAMS:
        counts = per_team[team]
        assert max(counts.values()) - min(counts.values()) <= 1, f"round-robin in {team} is off: {counts}"
    emea_owners = [decision(event).owner for event in routed if event.subject in emea_ids]
    assert {owner.team_id if owner is not None else None for owner in emea_owners} == {"emea"}
    assert not any((await dead_letter_counts(pipeline)).values())
