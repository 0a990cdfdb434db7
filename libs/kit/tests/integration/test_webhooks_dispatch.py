"""The webhook machinery on its own (as sla would use it): tables on a service's metadata, a
delivery enqueued in the business transaction, the dispatcher in an app's background, the signed
request verified by ``standardwebhooks``, lead.delivered written to the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from sqlalchemy import insert, select, text
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leadflow_kit.app import create_service_app
from leadflow_kit.db import Database, asyncpg_dsn, new_metadata
from leadflow_kit.platform import Platform
from leadflow_kit.webhooks import (
    DeliveryFacts,
    WebhookMetrics,
    WebhookSettings,
    WebhookToQueue,
    define_webhook_tables,
    delivery_table,
    enqueue_webhook,
    enqueue_webhooks,
    subscription_table,
    webhook_admin_router,
    webhook_dispatcher,
)
from leadflow_stack.procs import free_port
from leadflow_stack.testing import app_client, eventually, read_events

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer kit-webhook-admin-key-0123"}


Receive = Callable[[Request], Awaitable[Response]]


@dataclass
class Kit:
    db: Database
    client: httpx.AsyncClient
    hook_url: str
    delivered_topic: str


@contextlib.asynccontextmanager
async def webhook_app(infra: Any, receive: Receive, **overrides: Any) -> AsyncIterator[Kit]:
    """An app with the webhook tables, dispatcher and admin router on a fresh database, and a
    receiver on loopback answering with ``receive``."""
    url = await infra.new_database("kit_webhooks")
    metadata = new_metadata()
    define_webhook_tables(metadata)
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/hook", receive, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    server_task = asyncio.create_task(server.serve())
    prefix = infra.new_topic_prefix("kitwh")
    await infra.create_topics(prefix, partitions=1)
    settings = WebhookSettings(**{
        "service_name": "kit-webhooks", "database_url": url, "kafka_bootstrap_servers": infra.bootstrap_servers,
        "topic_prefix": prefix, "admin_api_key": "kit-webhook-admin-key-0123",
        "environment": "test", "webhook_retry_base_seconds": 0.05, "webhook_poll_interval_seconds": 0.1,
        "webhook_allow_http": True, "webhook_allowed_networks": "127.0.0.1", **overrides,
    })
    platform = Platform.build(settings)
    app = create_service_app(platform, None, title="kit webhooks",
                             background=[webhook_dispatcher(platform, WebhookMetrics(platform.metrics.registry))],
                             routers=[webhook_admin_router(read_scope="sla:read", write_scope="sla:write")])
    try:
        async with app_client(app, "http://kit") as client:
            yield Kit(db, client, f"http://127.0.0.1:{port}/hook", f"{prefix}leads.delivered")
    finally:
        server.should_exit = True
        await server_task
        await db.dispose()


async def statuses(db: Database) -> list[str]:
    async with db.transaction() as session:
        return list((await session.execute(select(delivery_table.c.status))).scalars())


async def test_enqueued_in_a_transaction_then_signed_delivered_and_reported(infra: Any) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    async def receive(request: Request) -> Response:
        received.append((await request.body(), dict(request.headers)))
        return Response(status_code=200 if len(received) > 1 else 502)

    async with webhook_app(infra, receive) as kit:
        created = await kit.client.post("/v1/admin/webhooks/subscriptions", headers=ADMIN,
                                        json={"url": kit.hook_url, "event_types": ["*"]})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]

        async with kit.db.transaction() as session:
            await session.execute(text("SELECT 1"))  # the business change would be here
            ids = await enqueue_webhook(
                session, event_type="lead.sla.breached", lead_id="lead-1", data={"lead_id": "lead-1"},
                now=datetime.now(UTC), correlation_id="corr-1",
            )
        assert len(ids) == 1

        async def delivered() -> bool:
            return await statuses(kit.db) == ["delivered"]

        await eventually(delivered, timeout=10)
        assert len(received) == 2 and {h["webhook-id"] for _, h in received} == {ids[0]}
        body, headers = received[-1]
        assert Webhook(secret).verify(body, headers)["type"] == "lead.sla.breached"

        # The report leaves through the outbox; the process that wrote it may already have sent it to Kafka.
        reported = await read_events(infra.bootstrap_servers, kit.delivered_topic, lambda events: bool(events))
        assert [(e.data.status, e.data.attempt) for e in reported] == [("delivered", 2)]


async def test_a_leads_deliveries_go_in_order_while_other_leads_do_not_wait(infra: Any) -> None:
    received: list[tuple[str, int, int]] = []  # (lead, sequence, status)

    async def receive(request: Request) -> Response:
        data = json.loads(await request.body())["data"]
        # The first delivery of lead-1 fails twice; everything else is taken at once.
        failing = data["lead_id"] == "lead-1" and data["seq"] == 1 and sum(
            1 for lead, seq, _ in received if (lead, seq) == ("lead-1", 1)) < 2
        status = 500 if failing else 204
        received.append((data["lead_id"], data["seq"], status))
        return Response(status_code=status)

    async with webhook_app(infra, receive, webhook_retry_base_seconds=0.3) as kit:
        created = await kit.client.post("/v1/admin/webhooks/subscriptions", headers=ADMIN,
                                        json={"url": kit.hook_url, "event_types": ["*"]})
        assert created.status_code == 201, created.text
        async with kit.db.transaction() as session:
            for lead, seq in (("lead-1", 1), ("lead-1", 2), ("lead-2", 1), ("lead-1", 3)):
                await enqueue_webhook(session, event_type="lead.routed", lead_id=lead,
                                      data={"lead_id": lead, "seq": seq}, now=datetime.now(UTC))

        async def all_delivered() -> bool:
            return await statuses(kit.db) == ["delivered"] * 4

        await eventually(all_delivered, timeout=15)
    lead_1 = [(seq, status) for lead, seq, status in received if lead == "lead-1"]
    assert lead_1 == [(1, 500), (1, 500), (1, 204), (2, 204), (3, 204)]
    # lead-2 went out at once, not behind lead-1's retries.
    assert received.index(("lead-2", 1, 204)) < received.index(("lead-1", 1, 204))


async def test_a_batch_enqueued_in_one_statement_queues_what_one_by_one_queues_in_order(infra: Any) -> None:
    """``enqueue_webhooks`` against ``enqueue_webhook`` one by one: the same deliveries (filters, wildcard
    and parent patterns, a disabled subscription's held, a deleted one's none) with ids in the same order."""
    now = datetime.now(UTC)
    subscriptions = [
        {"id": "all", "event_types": ["*"]},
        {"id": "hot-sales", "event_types": ["lead.*"], "filter_tiers": ["hot"], "filter_teams": ["sales"]},
        {"id": "demo-routed", "event_types": ["lead.routed"], "filter_forms": ["demo"], "active": False},
        {"id": "gone", "event_types": ["*"], "deleted_at": now},
    ]
    webhooks = [WebhookToQueue(event_type, f"lead-{n % 3}", {"n": n}, now, f"corr-{n}", now,
                               DeliveryFacts(tier=tier, team="sales", form=form))
                for n, (event_type, tier, form) in enumerate([
                    ("lead.routed", "hot", "demo"), ("lead.sla.breach", "warm", None), ("lead.mql", "hot", "x"),
                    ("lead.routed", None, "demo"), ("other.thing", "hot", "demo")])]

    async def queued(batched: bool) -> list[tuple[Any, ...]]:
        db = Database(await infra.new_database("kit_webhooks_batch"))
        metadata = new_metadata()
        define_webhook_tables(metadata)
        try:
            async with db.engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
            async with db.transaction() as session:
                defaults = {"url": "http://127.0.0.1:9/hook", "secret_ciphertext": "x", "active": True,
                            "deleted_at": None, "filter_tiers": None, "filter_teams": None, "filter_forms": None}
                await session.execute(insert(subscription_table), [{**defaults, **s} for s in subscriptions])
            async with db.transaction() as session:
                if batched:
                    await enqueue_webhooks(session, webhooks)
                else:
                    for w in webhooks:
                        await enqueue_webhook(session, event_type=w.event_type, lead_id=w.lead_id, data=w.data,
                                              now=w.now, correlation_id=w.correlation_id,
                                              lead_captured_at=w.lead_captured_at, facts=w.facts)
            async with db.transaction() as session:
                d = delivery_table
                rows = await session.execute(select(d.c.subscription_id, d.c.event_type, d.c.lead_id, d.c.payload,
                                                    d.c.correlation_id, d.c.status).order_by(d.c.id))
                return [tuple(row) for row in rows]
        finally:
            await db.dispose()

    one_by_one = await queued(batched=False)
    assert await queued(batched=True) == one_by_one
    assert [(sub, event_type, status) for sub, event_type, _, _, _, status in one_by_one] == [
        ("all", "lead.routed", "pending"), ("demo-routed", "lead.routed", "held"),
        ("hot-sales", "lead.routed", "pending"), ("all", "lead.sla.breach", "pending"),
        ("all", "lead.mql", "pending"), ("hot-sales", "lead.mql", "pending"),
        ("all", "lead.routed", "pending"), ("demo-routed", "lead.routed", "held"),
        ("all", "other.thing", "pending")]


async def _subscribe_and_enqueue(kit: Kit) -> None:
    created = await kit.client.post("/v1/admin/webhooks/subscriptions", headers=ADMIN,
                                    json={"url": kit.hook_url, "event_types": ["*"]})
    assert created.status_code == 201, created.text
    async with kit.db.transaction() as session:
        await enqueue_webhook(session, event_type="lead.routed", lead_id="lead-stop", data={"lead_id": "lead-stop"},
                              now=datetime.now(UTC))


async def _delivery_state(db: Database) -> tuple[str, int, datetime | None, datetime]:
    d = delivery_table
    async with db.transaction() as session:
        row = (await session.execute(select(d.c.status, d.c.attempts, d.c.leased_until, d.c.next_attempt_at))).one()
    return row.status, row.attempts, row.leased_until, row.next_attempt_at


async def test_a_send_cut_off_by_a_stop_is_given_back_due_at_once_not_left_leased(infra: Any) -> None:
    arrived = asyncio.Event()

    async def receive(request: Request) -> Response:
        arrived.set()
        await asyncio.sleep(2)  # past the stop's grace
        return Response(status_code=204)

    async with webhook_app(infra, receive, webhook_stop_grace_seconds=0.2) as kit:
        await _subscribe_and_enqueue(kit)
        await asyncio.wait_for(arrived.wait(), 10)
        stopping = datetime.now(UTC)
    status, attempts, leased_until, due = await _delivery_state(kit.db)
    # Leased for the timeout plus 30 s before; now due at once for any dispatcher, no attempt counted.
    assert (status, attempts, leased_until) == ("pending", 0, None)
    assert stopping <= due <= datetime.now(UTC)


async def test_a_record_cut_off_by_a_stop_is_written_by_the_wind_down(infra: Any) -> None:
    """The stop lands while the dispatcher writes a delivery's outcome (here: waiting on a row lock). The
    outcome is written before the dispatcher ends, not dropped with its lease left to run out and the
    webhook sent again."""
    locker: asyncpg.Connection | None = None

    async def receive(request: Request) -> Response:
        # The claim has committed: hold the row, so that writing the outcome waits.
        assert locker is not None
        await locker.execute("BEGIN")
        await locker.execute("SELECT 1 FROM webhook_delivery FOR UPDATE")
        return Response(status_code=204)

    async def recording_waits(kit: Kit) -> bool:
        # Not on the locker's connection: the receiver uses that one meanwhile.
        async with kit.db.autocommit() as watcher:
            return bool(await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%finished%'"))

    async def unlock_soon() -> None:
        assert locker is not None
        await asyncio.sleep(1.0)  # the stop has cancelled the first write by then
        await locker.execute("COMMIT")

    try:
        async with webhook_app(infra, receive) as kit:
            locker = await asyncpg.connect(asyncpg_dsn(kit.db.url))
            await _subscribe_and_enqueue(kit)
            await eventually(lambda: recording_waits(kit), timeout=10)
            unlocking = asyncio.create_task(unlock_soon())
        await unlocking
        status, attempts, leased_until, _ = await _delivery_state(kit.db)
    finally:
        if locker is not None:
            await locker.close()
    assert (status, attempts, leased_until) == ("delivered", 1, None)


async def test_a_send_ending_within_the_stop_s_grace_is_recorded(infra: Any) -> None:
    arrived = asyncio.Event()

    async def receive(request: Request) -> Response:
        arrived.set()
        await asyncio.sleep(0.5)
        return Response(status_code=204)

    async with webhook_app(infra, receive, webhook_stop_grace_seconds=5) as kit:
        await _subscribe_and_enqueue(kit)
        await asyncio.wait_for(arrived.wait(), 10)
    status, attempts, leased_until, _ = await _delivery_state(kit.db)
    assert (status, attempts, leased_until) == ("delivered", 1, None)
