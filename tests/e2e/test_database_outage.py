"""A PostgreSQL outage under load loses nothing and dead-letters nothing.

PostgreSQL (every service's database) is stopped for 30 s while forms are filled at 20 leads/s, then
started again. Capture refuses fills with 503 while it cannot store them; every fill it accepted
is routed once and delivered to the CRM once, and no event reaches a dead-letter topic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from e2e_support import Pipeline, dead_letter_counts, events_by_lead, events_on, eventually

from leadflow_contracts.topics import ROUTED

pytestmark = pytest.mark.e2e

RATE_PER_SECOND = 20
OUTAGE_SECONDS = 30
CONSUMING_SERVICES = ("enrichment", "scoring", "routing", "sla")
# Capture limits fills per client address; loopback is a /8, so the load comes from many addresses.
SOURCE_ADDRESSES = [f"127.0.0.{n}" for n in range(10, 42)]


@dataclass
class Load:
    accepted: list[str] = field(default_factory=list)
    refused: int = 0  # 503: capture could not store the fill and said to retry
    unexpected: list[str] = field(default_factory=list)


@asynccontextmanager
async def filling_forms(pipeline: Pipeline, rate: float) -> AsyncIterator[Load]:
    """Post ``rate`` fills a second, each with its own email, until the block ends."""
    load = Load()
    clients = [httpx.AsyncClient(timeout=15, transport=httpx.AsyncHTTPTransport(local_address=address))
               for address in SOURCE_ADDRESSES]
    url = f"{pipeline.urls['capture']}/v1/forms/demo/submissions"
    run = uuid.uuid4().hex[:8]

    async def post(n: int) -> None:
        client = clients[n % len(clients)]
        try:
            response = await client.post(url, json={"email": f"outage-{run}-{n}@acme.com", "first_name": "Outage",
                                                    "company": "Acme", "job_title": "VP Sales"})
        except httpx.HTTPError as exc:
            load.unexpected.append(f"fill {n}: {exc!r}")
            return
        if response.status_code == 202:
            load.accepted.append(response.json()["lead_id"])
        elif response.status_code == 503:
            load.refused += 1
        else:
            load.unexpected.append(f"fill {n}: {response.status_code} {response.text[:300]}")

    stop = asyncio.Event()

    async def generate() -> None:
        loop = asyncio.get_running_loop()
        posts: list[asyncio.Task[None]] = []
        next_at = loop.time()
        while not stop.is_set():
            posts.append(asyncio.create_task(post(len(posts))))
            next_at += 1 / rate
            await asyncio.sleep(max(next_at - loop.time(), 0))
        await asyncio.gather(*posts)

    generator = asyncio.create_task(generate())
    try:
        yield load
    finally:
        stop.set()
        await generator
        for client in clients:
            await client.aclose()


async def readiness(pipeline: Pipeline, service: str) -> tuple[int, dict[str, str]]:
    response = await pipeline.client.get(f"{pipeline.urls[service]}/readyz")
    return response.status_code, response.json().get("checks", {})


# The 30-second outage, the recovery and the module's five services starting on a busy machine.
@pytest.mark.timeout(900)
async def test_a_database_outage_under_load_routes_every_accepted_lead_once_and_dead_letters_nothing(
    pipeline: Pipeline,
) -> None:
    async with filling_forms(pipeline, RATE_PER_SECOND) as load:
        await asyncio.sleep(5)
        accepted_before = len(load.accepted)
        await pipeline.infra.stop_postgres()
        try:
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            during = {service: await readiness(pipeline, service) for service in CONSUMING_SERVICES}
            refused_during = load.refused
            await asyncio.sleep(OUTAGE_SECONDS / 2)
        finally:
            await pipeline.infra.start_postgres()
        await asyncio.sleep(5)

    assert not load.unexpected, load.unexpected[:5]
    assert accepted_before > 0 and refused_during > 0, (accepted_before, load.refused)
    for service, (status, checks) in during.items():
        assert status == 503, (service, checks)
        assert checks["database"].startswith("unreachable"), (service, checks)

    async def all_routed() -> bool:
        return set(load.accepted) <= set(await events_by_lead(pipeline, ROUTED))

    await eventually(all_routed, timeout=180, interval=2)

    async def all_delivered() -> bool:
        return set(load.accepted) <= set(pipeline.receiver.lead_ids())

    await eventually(all_delivered, timeout=60, interval=0.5)

    # Routed once: one routing decision, one lead.routed event. A relay whose commit the outage cut
    # after Kafka had the rows publishes them again (at least once); consumers drop the repeat by its id.
    decisions: dict[str, set[str]] = {}
    for event in await events_on(pipeline, ROUTED):
        decisions.setdefault(event.subject, set()).add(event.id)
    assert {lead_id: len(decisions.get(lead_id, ())) for lead_id in load.accepted} == dict.fromkeys(load.accepted, 1)
    assert all([await pipeline.assignment(lead_id) for lead_id in load.accepted[::25]])
    delivered = Counter(pipeline.receiver.lead_ids())
    assert {lead_id: delivered[lead_id] for lead_id in load.accepted} == dict.fromkeys(load.accepted, 1)
    webhook_ids = Counter(delivery["webhook_id"] for delivery in pipeline.receiver.deliveries)
    assert webhook_ids.most_common(1)[0][1] == 1, "a webhook was delivered twice"
    assert set((await dead_letter_counts(pipeline)).values()) == {0}

    for service in CONSUMING_SERVICES:
        async def ready(service: str = service) -> bool:
            return (await readiness(pipeline, service))[0] == 200

        await eventually(ready, timeout=30)
