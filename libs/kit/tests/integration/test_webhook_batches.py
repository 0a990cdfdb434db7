"""The dispatcher's hot statements, each for a whole round: the claim leases what it takes in the same
statement, and a round's finished attempts are recorded in one (counted on the transaction's
connection, as routing's batch tests count theirs)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event, insert, select

from leadflow_kit import pressure
from leadflow_kit.db import Database, driver_connection, new_metadata
from leadflow_kit.egress import IPAddress, guarded_session
from leadflow_kit.webhooks import (
    AttemptOutcome,
    WebhookMetrics,
    WebhookSettings,
    WebhookToQueue,
    define_webhook_tables,
    delivery_table,
    enqueue_webhooks,
    new_secret,
    subscription_table,
)
from leadflow_kit.webhooks.dispatcher import WebhookDispatcher, WebhookHandOff
from leadflow_kit.webhooks.policy import NextStep
from leadflow_kit.webhooks.store import _CLAIM as CLAIM_STATEMENT
from leadflow_kit.webhooks.store import _RECORD as RECORD_STATEMENT
from leadflow_kit.webhooks.store import _RELEASE as RELEASE_STATEMENT
from leadflow_kit.webhooks.store import DispatcherRoom, FinishedAttempt, webhook_transaction
from leadflow_kit.webhooks.tables import attempt_table
from leadflow_stack.testing import (
    array_literals,
    counting_statements,
    eventually,
    pipeline_database,
    plan_nodes,
    rows_filtered_out,
)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LEASED = NOW + timedelta(seconds=40)


@contextlib.asynccontextmanager
async def webhook_database(infra: Any, subscriptions: list[dict[str, Any]],
                           deliveries: list[dict[str, Any]]) -> AsyncIterator[Database]:
    db = Database(await infra.new_database("kit_webhook_batches"))
    metadata = new_metadata()
    define_webhook_tables(metadata)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        if subscriptions:
            async with db.transaction() as session:
                await session.execute(insert(subscription_table), [
                    {"url": "http://127.0.0.1:9/hook", "secret_ciphertext": "x", "event_types": ["*"], "active": True,
                     **s}
                    for s in subscriptions])
                await session.execute(insert(delivery_table), [
                    {"event_type": "lead.routed", "payload": "{}", "next_attempt_at": NOW - timedelta(seconds=1),
                     "leased_until": None, "attempts": 0, "created_at": NOW, **d} for d in deliveries])
        yield db
    finally:
        await db.dispose()


async def rows(db: Database) -> dict[str, dict[str, Any]]:
    async with db.transaction() as session:
        found = await session.execute(select(delivery_table))
        return {row.webhook_id: dict(row._mapping) for row in found}


def delivery(webhook_id: str, subscription_id: str, lead_id: str, **columns: Any) -> dict[str, Any]:
    return {"id": int(webhook_id.removeprefix("d")), "webhook_id": webhook_id, "subscription_id": subscription_id,
            "lead_id": lead_id, **columns}


async def plan_once_then_run_over(db: Database, statement: str, empty_arguments: str, backlog: list[dict[str, Any]],
                                  arguments: str) -> dict[str, Any]:
    """``statement``'s plan on a pipeline connection (PIPELINE_PLANNING: planned once, at its first run, with
    ``empty_arguments``, over statistics of the rows there now), run with ``arguments`` after ``backlog``
    (delivery rows) came: EXPLAIN ANALYZE's."""
    async with db.engine.begin() as analyzing:
        await analyzing.exec_driver_sql("ANALYZE webhook_delivery")
    async with pipeline_database(db.url) as pipeline, pipeline.autocommit() as conn:
        await conn.execute(f"PREPARE planned_once AS {statement}")
        await conn.execute(f"EXECUTE planned_once({empty_arguments})")
        async with db.transaction() as session:
            await session.execute(insert(delivery_table), [
                {"event_type": "lead.routed", "payload": "{}", "created_at": NOW, "status": "pending",
                 "leased_until": None, "attempts": 0, **columns} for columns in backlog])
        [plan] = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE planned_once({arguments})")
        generic = await conn.fetchval("SELECT generic_plans FROM pg_prepared_statements WHERE name = 'planned_once'")
    assert generic == 2  # the plan made over the statistics before the backlog
    plan_root: dict[str, Any] = plan["Plan"]
    return plan_root


def leased_over_history(analyzed_in_flight: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """32 rows leased to a dispatcher (d1001 to d1032), and the rows there when the statistics are taken: 200
    delivered and the first ``analyzed_in_flight`` of the leased ones."""
    leased = {"status": "pending", "leased_until": LEASED, "next_attempt_at": LEASED}
    in_flight = [delivery(f"d{n}", "crm", f"sent-{n}", **leased) for n in range(1001, 1033)]
    history = [delivery(f"d{n}", "crm", f"done-{n}", status="delivered", attempts=1) for n in range(1, 201)]
    return in_flight, [*history, *in_flight[:analyzed_in_flight]]


async def test_a_rounds_attempts_are_recorded_in_one_statement_that_keeps_each_ones_rules(infra: Any) -> None:
    retry_at = NOW + timedelta(seconds=10)
    leased = {"leased_until": LEASED, "next_attempt_at": LEASED}
    subscriptions = [{"id": "crm"}, {"id": "off", "active": False}]
    deliveries = [
        delivery("d1", "crm", "lead-1", **leased),
        delivery("d2", "crm", "lead-2", **leased),
        delivery("d3", "off", "lead-3", **leased),
        # Recorded by someone else since it was claimed (its second attempt): this dispatcher's is dropped.
        delivery("d4", "crm", "lead-4", attempts=1, **leased),
        # Waiting out a backoff, not in flight: d1's success makes it due at once.
        delivery("d5", "crm", "lead-5", attempts=2, next_attempt_at=NOW + timedelta(minutes=5)),
    ]
    finished = [
        FinishedAttempt(1, 0, AttemptOutcome(204, None), NextStep("delivered", None), NOW, 0.01),
        FinishedAttempt(2, 0, AttemptOutcome(500, "HTTP 500: no"), NextStep("pending", retry_at), NOW, 0.02),
        FinishedAttempt(3, 0, AttemptOutcome(None, "ConnectError"), NextStep("pending", retry_at), NOW, 0.03),
        FinishedAttempt(4, 0, AttemptOutcome(204, None), NextStep("delivered", None), NOW, 0.04),
    ]
    async with webhook_database(infra, subscriptions, deliveries) as db:
        async with webhook_transaction(db) as store:
            with counting_statements(await driver_connection(store.session)) as statements:
                recorded = await store.record_attempts(finished)
        assert len(statements) == 1
        assert recorded.delivery_ids == {1, 2, 3}
        # d1's success made d5 due: a claim would find it.
        assert recorded.claimable

        after = await rows(db)
        assert (after["d1"]["status"], after["d1"]["attempts"], after["d1"]["delivered_at"]) == ("delivered", 1, NOW)
        assert (after["d2"]["status"], after["d2"]["next_attempt_at"], after["d2"]["last_status_code"],
                after["d2"]["last_error"]) == ("pending", retry_at, 500, "HTTP 500: no")
        # Its subscription was disabled while it was in flight: held, not retried.
        assert after["d3"]["status"] == "held"
        assert all(after[d]["leased_until"] is None for d in ("d1", "d2", "d3"))
        assert (after["d4"]["status"], after["d4"]["attempts"], after["d4"]["leased_until"]) == ("pending", 1, LEASED)
        assert after["d5"]["next_attempt_at"] == NOW
        async with db.transaction() as session:
            a = attempt_table
            attempts = (await session.execute(
                select(a.c.delivery_id, a.c.attempt, a.c.outcome, a.c.status_code, a.c.next_attempt_at)
                .order_by(a.c.id))).all()
        assert [tuple(row) for row in attempts] == [
            (1, 1, "delivered", 204, None), (2, 1, "failed", 500, retry_at), (3, 1, "failed", None, retry_at)]


async def test_a_recorded_outcome_says_a_claim_is_wanted_only_when_a_row_of_its_subscription_waits(infra: Any) -> None:
    leased = {"leased_until": LEASED, "next_attempt_at": LEASED}
    subscriptions = [{"id": "crm"}, {"id": "other"}]
    deliveries = [
        delivery("d1", "crm", "lead-1", **leased),
        delivery("d2", "crm", "lead-2", **leased),
        delivery("d3", "crm", "lead-3", **leased),  # still in flight: not a row for a claim
        delivery("d4", "crm", "lead-4", attempts=1, next_attempt_at=NOW + timedelta(minutes=5)),  # a backoff
        delivery("d5", "other", "lead-5"),  # due, but another subscription's
        delivery("d6", "crm", "lead-2"),  # behind d2, its lead's earlier delivery
    ]
    async with webhook_database(infra, subscriptions, deliveries) as db:
        async with webhook_transaction(db) as store:
            failed = await store.record_attempts([
                FinishedAttempt(1, 0, AttemptOutcome(500, "HTTP 500"), NextStep("pending", NOW + timedelta(hours=1)),
                                NOW, 0.01)])
        assert failed.delivery_ids == {1}
        # d6 is due and not leased: whatever held it back, a claim decides.
        assert failed.claimable
        async with webhook_transaction(db) as store:
            await store.session.execute(delivery_table.delete().where(delivery_table.c.id == 6))
            second = await store.record_attempts([
                FinishedAttempt(3, 0, AttemptOutcome(500, "HTTP 500"), NextStep("pending", NOW + timedelta(hours=1)),
                                NOW, 0.01)])
        # Only rows in flight, waiting out a backoff, or of another subscription: no claim.
        assert (second.delivery_ids, second.claimable) == ({3}, False)
        async with webhook_transaction(db) as store:
            delivered = await store.record_attempts([
                FinishedAttempt(2, 0, AttemptOutcome(204, None), NextStep("delivered", None), NOW, 0.01)])
        # A success makes the subscription's backlog due at once (d1 and d3 retries, d4): a claim is wanted.
        assert (delivered.delivery_ids, delivered.claimable) == ({2}, True)


async def test_a_batch_handed_to_the_dispatcher_is_leased_to_it_within_its_room_and_per_lead_order(
        infra: Any) -> None:
    subscriptions = [{"id": "busy"}, {"id": "calm"}, {"id": "off", "active": False}]
    # lead-9 has an open delivery to calm already: its new one waits behind it, for a claim.
    deliveries = [delivery("d1000", "calm", "lead-9")]
    webhooks = [WebhookToQueue("lead.routed", lead, {"lead_id": lead, "n": n}, NOW)
                for n, lead in enumerate(["lead-1", "lead-1", "lead-2", "lead-9", "lead-3"])]
    # busy has one send in flight of its share of 2; three sends in all are free.
    room = DispatcherRoom(free=3, share=2, in_flight={"busy": 1}, lease_until=LEASED)
    async with webhook_database(infra, subscriptions, deliveries) as db:
        async with webhook_transaction(db) as store:
            with counting_statements(await driver_connection(store.session)) as statements:
                queued = await store.enqueue_handed(webhooks, room)
        assert len(statements) == 1 and not any("pg_notify" in s for s in statements)
        # busy: room for one (lead-1's first); calm: lead-1's first and lead-2 fill its share (lead-1's
        # second waits behind its first, lead-9's behind d1000, lead-3 for room); three in all.
        handed = [(d.subscription_id, d.lead_id, json.loads(d.payload)["data"]["n"]) for d in queued.handed]
        assert handed == [("busy", "lead-1", 0), ("calm", "lead-1", 0), ("calm", "lead-2", 2)]
        assert queued.claimable
        assert all(d.url == "http://127.0.0.1:9/hook" and d.attempts == 0 for d in queued.handed)
        after = (await rows(db)).values()
        by_state = sorted((row["subscription_id"], row["lead_id"], row["status"], row["leased_until"] is not None)
                          for row in after)
        assert by_state == sorted([
            ("calm", "lead-9", "pending", False),  # d1000
            *[("busy", lead, "pending", lead == "lead-1" and leased)
              for lead, leased in [("lead-1", True), ("lead-1", False), ("lead-2", False), ("lead-9", False),
                                   ("lead-3", False)]],
            *[("calm", lead, "pending", leased)
              for lead, leased in [("lead-1", True), ("lead-1", False), ("lead-2", True), ("lead-9", False),
                                   ("lead-3", False)]],
            *[("off", lead, "held", False) for lead in ["lead-1", "lead-1", "lead-2", "lead-9", "lead-3"]],
        ])
        handed_rows = [row for row in after if row["leased_until"] is not None]
        assert all(row["next_attempt_at"] == LEASED for row in handed_rows)

        # With no room at all, everything is queued for a claim, as without a dispatcher.
        async with webhook_transaction(db) as store:
            none = await store.enqueue_handed(webhooks[4:], DispatcherRoom(0, 2, {}, LEASED))
        assert (none.handed, none.claimable) == ([], True)


async def test_the_claim_leases_in_the_same_statement_within_shares_skips_and_per_lead_order(infra: Any) -> None:
    subscriptions = [{"id": "busy"}, {"id": "calm"}, {"id": "off", "active": False}]
    deliveries = [
        # busy has one send in flight and a share of 2: one more of its rows may go.
        delivery("d1", "busy", "lead-1"),
        delivery("d2", "busy", "lead-2"),
        # calm: d4 waits behind its lead's earlier d3; d5 is already being sent by this dispatcher.
        delivery("d3", "calm", "lead-3"),
        delivery("d4", "calm", "lead-3"),
        delivery("d5", "calm", "lead-5"),
        delivery("d6", "calm", "lead-6", next_attempt_at=NOW - timedelta(seconds=5)),
        delivery("d7", "calm", "lead-7", next_attempt_at=NOW + timedelta(seconds=5)),  # not due yet
        delivery("d8", "off", "lead-8"),
    ]
    async with webhook_database(infra, subscriptions, deliveries) as db:
        async with webhook_transaction(db) as store:
            with counting_statements(await driver_connection(store.session)) as statements:
                claimed = await store.claim_due(NOW, limit=10, share=2, in_flight={"busy": 1}, skip_ids=[5],
                                                lease_until=LEASED)
        assert len(statements) == 1
        # Oldest due first; calm's share of 2 is full with d6 and d3.
        assert [c.webhook_id for c in claimed] == ["d6", "d1", "d3"]
        assert claimed[0].url == "http://127.0.0.1:9/hook" and claimed[0].attempts == 0
        after = await rows(db)
        leased = {w for w, row in after.items() if row["leased_until"] is not None}
        assert leased == {"d6", "d1", "d3"}
        assert all(after[w]["next_attempt_at"] == LEASED for w in leased)

        # Leased rows are not due again; the overall limit cuts the rest.
        async with webhook_transaction(db) as store:
            again = await store.claim_due(NOW, limit=1, share=2, in_flight={}, skip_ids=[], lease_until=LEASED)
        assert [c.webhook_id for c in again] == ["d2"]


async def test_a_claim_over_a_backlog_probes_each_candidates_lead_whatever_the_statistics_say(infra: Any) -> None:
    # The planner's statistics were taken while the table held a few delivered rows; since then a backlog of
    # 6,000 pending rows has come (make bench at 400 leads/s, before autovacuum's next look). A claim must still
    # probe each candidate's lead by the per-lead index, not read the subscription's whole backlog per candidate.
    delivered = [delivery(f"d{n}", "crm", f"done-{n}", status="delivered") for n in range(1, 201)]
    async with webhook_database(infra, [{"id": "crm"}], delivered) as db:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE webhook_delivery")
        async with db.transaction() as session:
            await session.execute(insert(delivery_table), [
                {"event_type": "lead.routed", "payload": "{}", "next_attempt_at": NOW - timedelta(seconds=1),
                 "attempts": 0, "created_at": NOW, **delivery(f"d{n}", "crm", f"lead-{n}")}
                for n in range(1001, 7001)])
        async with webhook_transaction(db) as store:
            conn = await driver_connection(store.session)
            [plan] = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + CLAIM_STATEMENT, NOW, 50, 32, [], [], [], LEASED)
            await store.session.rollback()
        pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
        # About 850 pages, whatever the backlog (the probes, the leases written); the anti-join read 6,000 index
        # entries per candidate, 4,000+ pages here and more with every row of backlog.
        assert pages < 1_500, (pages, json.dumps(plan)[:2000])

        async with webhook_transaction(db) as store:
            claimed = await store.claim_due(NOW, limit=50, share=32, in_flight={}, skip_ids=[], lease_until=LEASED)
        assert [c.webhook_id for c in claimed] == [f"d{n}" for n in range(1001, 1033)]


@pytest.mark.parametrize("analyzed_in_flight", [0, 32], ids=["quiet", "busy"])
async def test_a_record_over_a_backlog_reaches_its_rows_by_key_whatever_the_statistics_say(
        infra: Any, analyzed_in_flight: int) -> None:
    # The pipeline's connections plan a statement once (PIPELINE_PLANNING). This plan is made over statistics
    # of a few delivered rows and none (a quiet receiver) or 32 (a busy one) in flight, and kept while a
    # backlog of 6,000 rows comes (a burst, before autovacuum's next look; make bench at 400 leads/s).
    # Recording 32 sends must reach those rows by key, and leave the backlog alone: rows queued while the
    # sends ran are not waiting out a backoff. Only the row that is gets woken by the successes.
    sent, known = leased_over_history(analyzed_in_flight)
    queued_while_sending = NOW + timedelta(seconds=1)
    finished = [FinishedAttempt(n, 0, AttemptOutcome(204, None), NextStep("delivered", None),
                                NOW + timedelta(seconds=2 * (n - 1001) / 31), 0.01) for n in range(1001, 1033)]
    async with webhook_database(infra, [{"id": "crm"}], known) as db:
        plan = await plan_once_then_run_over(db, RECORD_STATEMENT, array_literals(*[[]] * 10), [
            *sent[analyzed_in_flight:],
            delivery("d2000", "crm", "retried", attempts=2, next_attempt_at=NOW + timedelta(minutes=5)),
            *[delivery(f"d{n}", "crm", f"lead-{n}", next_attempt_at=queued_while_sending) for n in range(3001, 9001)],
        ], array_literals(
            [a.delivery_id for a in finished], [0] * 32, ["delivered"] * 32, [a.at for a in finished],
            [a.at for a in finished], [204] * 32, [None] * 32, [10.0] * 32, ["delivered"] * 32, [None] * 32))
        # The 32 rows by key: a scan of the open rows joined to them threw away 6,000 rows for each (192,000
        # here with the quiet statistics), and more with every row of backlog.
        [updated] = [node for node in plan_nodes(plan) if node.get("Subplan Name") == "CTE updated"]
        assert rows_filtered_out(updated) < 100, json.dumps(updated)[:4000]
        if analyzed_in_flight:
            # And the backed-off one by its own index. Over statistics that saw no open row at all, the planner
            # may read the subscription's open rows for it instead (writing none: asserted below).
            assert rows_filtered_out(plan) < 100, json.dumps(plan)[:4000]

        after = await rows(db)
        assert {after[f"d{n}"]["status"] for n in range(1001, 1033)} == {"delivered"}
        assert after["d2000"]["next_attempt_at"] == NOW
        assert {after[f"d{n}"]["next_attempt_at"] for n in range(3001, 9001)} == {queued_while_sending}


class RawReceiver:
    """An HTTP/1.1 receiver that counts the connections it accepts; answers each lead's first
    ``failures`` requests with a 500 and a body longer than the delivery log keeps, then 204."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.connections = 0
        self.requests: list[str] = []  # each request's lead

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                lead = json.loads(await reader.readexactly(length))["data"]["lead_id"]
                self.requests.append(lead)
                if self.requests.count(lead) <= self.failures:
                    body = b"<html>" + b"x" * 8000 + b"</html>"
                    writer.write(b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        writer.close()


@dataclass
class Delivered:
    statements: list[str]  # every statement the dispatcher's database connections ran
    resolved: list[str]  # every host name the egress check resolved


async def deliver(infra: Any, receiver: RawReceiver, leads: list[str], **overrides: Any) -> Delivered:
    """Queue one webhook per lead (in one transaction) to ``receiver`` at a name that resolves to
    loopback, run a dispatcher until every one is delivered, and stop it."""
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    found = Delivered([], [])

    async def resolver(host: str, port: int) -> list[IPAddress]:
        found.resolved.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    async with webhook_database(infra, [], []) as db:
        settings = WebhookSettings(**{
            "service_name": "kit-webhooks", "database_url": db.url, "kafka_bootstrap_servers": "127.0.0.1:9",
            "environment": "test", "webhook_retry_base_seconds": 0.05, "webhook_jitter_ratio": 0,
            "webhook_poll_interval_seconds": 0.1, "webhook_allow_http": True,
            "webhook_allowed_networks": "127.0.0.1", **overrides})
        async with db.transaction() as session:
            await session.execute(insert(subscription_table).values(
                id="crm", url=f"http://crm.example:{port}/hook", event_types=["*"], active=True,
                secret_ciphertext=settings.secret_box().encrypt(new_secret())))
            await enqueue_webhooks(session, [WebhookToQueue("lead.routed", lead, {"lead_id": lead}, NOW)
                                             for lead in leads])
        # Every connection the dispatcher's pool opens from here on reports its statements.
        await db.engine.dispose()
        event.listen(db.engine.sync_engine, "connect", lambda conn, _: conn.driver_connection.add_query_logger(
            lambda record: found.statements.append(record.query)))
        http = guarded_session(settings.egress_policy(), resolver)
        dispatcher = WebhookDispatcher(settings, db, http, WebhookMetrics(CollectorRegistry()))
        running = asyncio.create_task(dispatcher.run())
        watcher = Database(db.url)  # the test's own reads are not the dispatcher's statements
        try:
            async def all_delivered() -> bool:
                return {row["status"] for row in (await rows(watcher)).values()} == {"delivered"}

            await eventually(all_delivered, timeout=30)
        finally:
            dispatcher.stop()
            await running
            await http.close()
            await watcher.dispose()
            server.close()
    return found


async def test_sends_to_a_receiver_reuse_one_kept_alive_connection_whose_name_was_checked_once(infra: Any) -> None:
    """A failure's long body is read to its end too (the log keeps 1 KiB), or its connection would
    close and the next send pay a new one: a lookup, the egress check, a TLS handshake."""
    receiver = RawReceiver(failures=2)
    leads = [f"lead-{n}" for n in range(20)]
    # One send at a time: every send may reuse the connection the last one left.
    found = await deliver(infra, receiver, leads, webhook_concurrency=1, webhook_subscription_concurrency=1)
    assert sorted(receiver.requests) == sorted(leads * 3)
    assert receiver.connections == 1
    assert found.resolved == ["crm.example"]


async def test_a_delivered_webhook_costs_a_few_statements_a_round_not_several_of_its_own(infra: Any) -> None:
    receiver = RawReceiver()
    leads = [f"lead-{n}" for n in range(200)]
    found = await deliver(infra, receiver, leads, webhook_subscription_concurrency=32, webhook_batch_size=50)
    assert sorted(receiver.requests) == sorted(leads)
    # BEGIN and COMMIT counted, and the driver's setup of each new connection.
    per_delivery = len(found.statements) / len(leads)
    print(f"{len(found.statements)} statements for {len(leads)} deliveries: {per_delivery:.2f} each")
    # One outcome statement per delivery alone was 1.0 (1.5 in all before the round-wide statements).
    assert per_delivery < 1.0


async def test_webhooks_handed_over_at_commit_go_out_without_a_claim_or_a_notify(infra: Any) -> None:
    """A batch queued with the dispatcher's hand-off is sent as soon as it commits: the poll is far off
    (30 s), no NOTIFY wakes anyone, and no claim runs; each delivery costs its share of the round's
    outcome statement only."""
    receiver = RawReceiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    leads = [f"lead-{n}" for n in range(30)]
    async with webhook_database(infra, [], []) as db:
        settings = WebhookSettings(**{
            "service_name": "kit-webhooks", "database_url": db.url, "kafka_bootstrap_servers": "127.0.0.1:9",
            "environment": "test", "webhook_poll_interval_seconds": 30, "webhook_allow_http": True,
            "webhook_allowed_networks": "127.0.0.1"})
        async with db.transaction() as session:
            await session.execute(insert(subscription_table).values(
                id="crm", url=f"http://127.0.0.1:{port}/hook", event_types=["*"], active=True,
                secret_ciphertext=settings.secret_box().encrypt(new_secret())))
        statements: list[str] = []
        await db.engine.dispose()
        event.listen(db.engine.sync_engine, "connect", lambda conn, _: conn.driver_connection.add_query_logger(
            lambda record: statements.append(record.query)))
        http = guarded_session(settings.egress_policy())
        dispatcher = WebhookDispatcher(settings, db, http, WebhookMetrics(CollectorRegistry()))
        hand_off = WebhookHandOff()
        hand_off.dispatcher = dispatcher
        running = asyncio.create_task(dispatcher.run())
        queuing = Database(db.url)  # the business transaction's connection: its statements are not counted
        try:
            # The first round claims (whatever was left from before) and looks up the next due row.
            async def first_round_done() -> bool:
                return dispatcher.running and any("min(x.next_attempt_at)" in s for s in statements)

            await eventually(first_round_done)
            statements.clear()
            async with queuing.transaction() as session:
                with counting_statements(await driver_connection(session)) as queued:
                    await enqueue_webhooks(session, [WebhookToQueue("lead.routed", lead, {"lead_id": lead}, NOW)
                                                     for lead in leads], hand_off)

            async def all_delivered() -> bool:
                return {row["status"] for row in (await rows(queuing)).values()} == {"delivered"}

            await eventually(all_delivered, timeout=10)
        finally:
            dispatcher.stop()
            await running
            await http.close()
            await queuing.dispose()
            server.close()
    assert sorted(receiver.requests) == sorted(leads)
    assert not any("pg_notify" in s for s in queued)
    assert not any("WITH claimed" in s or "min(x.next_attempt_at)" in s for s in statements)
    # BEGIN, the outcomes' statement and COMMIT a round, however many sends ended in it.
    assert len(statements) <= 3 * len(leads)



@contextlib.asynccontextmanager
async def running_dispatcher(db: Database, settings: WebhookSettings
                             ) -> AsyncIterator[tuple[WebhookDispatcher, WebhookHandOff]]:
    """A dispatcher of ``db`` running (its hand-off filled) until the block ends."""
    http = guarded_session(settings.egress_policy())
    dispatcher = WebhookDispatcher(settings, db, http, WebhookMetrics(CollectorRegistry()))
    hand_off = WebhookHandOff()
    hand_off.dispatcher = dispatcher
    running = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher, hand_off
    finally:
        dispatcher.stop()
        await running
        await http.close()

@contextlib.asynccontextmanager
async def dispatching_to(infra: Any, receiver: RawReceiver | HoldingReceiver, **overrides: Any
                         ) -> AsyncIterator[tuple[WebhookDispatcher, WebhookHandOff, Database]]:
    """A running dispatcher (no poll for 30 s) with one subscription to ``receiver``, and a database of the
    test's own for the transactions that queue webhooks."""
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with webhook_database(infra, [], []) as db:
            settings = WebhookSettings(**{
                "service_name": "kit-webhooks", "database_url": db.url, "kafka_bootstrap_servers": "127.0.0.1:9",
                "environment": "test", "webhook_poll_interval_seconds": 30, "webhook_allow_http": True,
                "webhook_allowed_networks": "127.0.0.1", **overrides})
            async with db.transaction() as session:
                await session.execute(insert(subscription_table).values(
                    id="crm", url=f"http://127.0.0.1:{port}/hook", event_types=["*"], active=True,
                    secret_ciphertext=settings.secret_box().encrypt(new_secret())))
            queuing = Database(db.url)
            try:
                async with running_dispatcher(db, settings) as (dispatcher, hand_off):
                    async def dispatching() -> bool:
                        return dispatcher.running

                    await eventually(dispatching)
                    yield dispatcher, hand_off, queuing
            finally:
                await queuing.dispose()
    finally:
        server.close()


class HoldingReceiver:
    """An HTTP/1.1 receiver that holds each request ``delay`` seconds and counts how many it holds at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.open = 0
        self.most_open = 0
        self.requests: list[str] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(json.loads(await reader.readexactly(length))["data"]["lead_id"])
                self.open += 1
                self.most_open = max(self.most_open, self.open)
                try:
                    await asyncio.sleep(self.delay)
                finally:
                    self.open -= 1
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        writer.close()


async def test_two_transactions_that_saw_the_same_room_do_not_send_past_the_share(infra: Any) -> None:
    """Two transactions look at the dispatcher's room before either commits, and each leases it the
    subscription's whole share: at their commits it starts only what the share still allows and gives
    the rest back for a claim, so the receiver never holds more than the share, and every webhook goes
    out once."""
    receiver = HoldingReceiver(delay=0.5)
    async with dispatching_to(infra, receiver, webhook_subscription_concurrency=2) as (_, hand_off, queuing):
        # Both look at the room (nothing in flight) before either commits; the second commits first.
        async with queuing.transaction() as first, queuing.transaction() as second:
            for session, leads in ((first, ("lead-1", "lead-2")), (second, ("lead-3", "lead-4"))):
                await enqueue_webhooks(session, [WebhookToQueue("lead.routed", lead, {"lead_id": lead}, NOW)
                                                 for lead in leads], hand_off)

        async def all_delivered() -> bool:
            found = (await rows(queuing)).values()
            return len(found) == 4 and {row["status"] for row in found} == {"delivered"}

        await eventually(all_delivered, timeout=15)
    assert receiver.most_open == 2
    assert sorted(receiver.requests) == ["lead-1", "lead-2", "lead-3", "lead-4"]


async def test_a_claim_that_a_hand_over_overtook_sends_only_within_the_share_left(
    infra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim counts the sends in flight as it begins. While it runs, a transaction commits and hands
    over the subscription's whole share (it saw nothing in flight either): the claimed rows then start
    only within what the share still allows, the rest are given back for a later claim, so the receiver
    never holds more than the share, and every webhook goes out once."""
    receiver = HoldingReceiver(delay=0.5)
    async with dispatching_to(infra, receiver, webhook_subscription_concurrency=2) as (dispatcher, hand_off, queuing):
        claim = dispatcher._claim
        overtaken = False

        async def claim_overtaken_by_a_hand_over(limit: int) -> list[Any]:
            nonlocal overtaken
            claimed = await claim(limit)
            if claimed and not overtaken:
                overtaken = True
                async with queuing.transaction() as session:
                    await enqueue_webhooks(session, [WebhookToQueue("lead.routed", lead, {"lead_id": lead}, NOW)
                                                     for lead in ("lead-3", "lead-4")], hand_off)
            return claimed

        monkeypatch.setattr(dispatcher, "_claim", claim_overtaken_by_a_hand_over)
        # Queued for a claim (no hand-off): the NOTIFY at commit wakes the dispatcher's claim.
        async with queuing.transaction() as session:
            await enqueue_webhooks(session, [WebhookToQueue("lead.routed", lead, {"lead_id": lead}, NOW)
                                             for lead in ("lead-1", "lead-2")])

        async def all_delivered() -> bool:
            found = (await rows(queuing)).values()
            return len(found) == 4 and {row["status"] for row in found} == {"delivered"}

        await eventually(all_delivered, timeout=15)
    assert overtaken
    assert receiver.most_open == 2
    assert sorted(receiver.requests) == ["lead-1", "lead-2", "lead-3", "lead-4"]


@pytest.mark.parametrize(("cpu_pressure_to_linger", "recordings"), [(0.0, 1), (0.5, 2)],
                         ids=["cpu-short", "cpu-to-spare"])
async def test_sends_that_end_while_the_cpu_is_short_are_recorded_together(
    infra: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, cpu_pressure_to_linger: float, recordings: int
) -> None:
    """While the stalled share of PSI is at least consumer_linger_cpu_pressure, a send that ended waits up to
    webhook_record_linger_ms to be recorded with those that end meanwhile: two webhooks queued 0.3 s apart
    are recorded in one transaction. With CPU to spare each is recorded by the round after it ends. The PSI
    file here says nothing waits (a share of 0), so a threshold of 0 is "short" and 0.5 is not."""
    psi = tmp_path / "cpu.pressure"
    psi.write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    monkeypatch.setattr(pressure, "PSI_FILES", (psi,))
    receiver = RawReceiver()
    async with dispatching_to(infra, receiver, webhook_record_linger_ms=1000,
                              consumer_linger_cpu_pressure=cpu_pressure_to_linger) as (dispatcher, hand_off, queuing):
        for lead in ("lead-1", "lead-2"):
            async with queuing.transaction() as session:
                await enqueue_webhooks(session, [WebhookToQueue("lead.routed", lead, {"lead_id": lead}, NOW)], hand_off)
            await asyncio.sleep(0.3)

        async def both_recorded() -> bool:
            found = (await rows(queuing)).values()
            return len(found) == 2 and {row["status"] for row in found} == {"delivered"}

        await eventually(both_recorded, timeout=15)
        recorded = dispatcher.metrics.recordings.labels("kit-webhooks")._value.get()
    assert sorted(receiver.requests) == ["lead-1", "lead-2"]
    assert recorded == recordings


@pytest.mark.parametrize("analyzed_in_flight", [0, 32], ids=["quiet", "busy"])
async def test_a_give_back_over_a_backlog_reaches_its_rows_by_key_whatever_the_statistics_say(
        infra: Any, analyzed_in_flight: int) -> None:
    # As the record above: a plan made once over statistics of a few delivered rows and none (or 32) in flight,
    # kept while a backlog of 6,000 open rows comes. Giving back 32 leased rows (a stop, or a claim a hand-over
    # overtook) must reach them by key, not compare each with the whole backlog of open rows. A row given back
    # that is no longer leased (another dispatcher recorded it) stays as it is. The statement before threw away
    # 7,024 rows here with the quiet statistics and 6,528 with the busy ones.
    given_back, known = leased_over_history(analyzed_in_flight)
    queued = NOW + timedelta(seconds=1)
    async with webhook_database(infra, [{"id": "crm"}], known) as db:
        plan = await plan_once_then_run_over(db, RELEASE_STATEMENT, "'{}', '{}', now()", [
            *given_back[analyzed_in_flight:],
            *[delivery(f"d{n}", "crm", f"lead-{n}", next_attempt_at=queued) for n in range(3001, 9001)],
        ], array_literals([*range(1001, 1033), 3001], [0] * 33) + f", '{NOW.isoformat()}'")
        assert rows_filtered_out(plan) < 100, json.dumps(plan)[:4000]

        after = await rows(db)
        assert {(after[f"d{n}"]["next_attempt_at"], after[f"d{n}"]["leased_until"]) for n in range(1001, 1033)} \
            == {(NOW, None)}
        assert {after[f"d{n}"]["next_attempt_at"] for n in range(3001, 9001)} == {queued}
