"""The dispatcher's hot statements, each for a whole round: the claim leases what it takes in the same
statement, and a round's finished attempts are recorded in one (counted on the transaction's
connection, as routing's batch tests count theirs)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from leadflow_kit.db import Database, driver_connection, new_metadata
from leadflow_kit.webhooks import AttemptOutcome, define_webhook_tables, delivery_table, subscription_table
from leadflow_kit.webhooks.policy import NextStep
from leadflow_kit.webhooks.store import FinishedAttempt, webhook_transaction
from leadflow_kit.webhooks.tables import attempt_table
from leadflow_stack.testing import counting_statements

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
        assert recorded == {1, 2, 3}

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
