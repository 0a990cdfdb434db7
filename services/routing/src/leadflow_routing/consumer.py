"""Routing's event subscriptions: scored leads are routed, SLA breaches re-routed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leadflow_contracts import Event, topics
from leadflow_kit.consumer import EventConsumer, UnitOfWork
from leadflow_kit.db import driver_connection
from leadflow_kit.privacy import subscribe_erasures
from leadflow_routing import handlers
from leadflow_routing.privacy import PERSONAL_DATA
from leadflow_routing.settings import Settings

# Assignment decisions are serialized per database. Lock order alone cannot prevent deadlocks once
# the kit handles a poll's leads in one transaction: lead 1 may lock an account owner's rep row and
# lead 2 a team, while a concurrent batch does the reverse. Round-robin turns were serialized on the
# team row already, so one transaction-scoped lock costs little and makes deadlocks impossible.
ROUTING_LOCK_KEY = 0x5EAD0001
# Where a session remembers the transaction that holds the lock.
ROUTING_LOCK_HELD = "leadflow_routing_lock_held_by"


async def take_routing_lock(uow: UnitOfWork) -> None:
    # Held until the transaction ends, so a batch's later leads skip the statement; the lock is
    # re-entrant anyway. The transaction object tells a new transaction of the same session apart.
    transaction = uow.session.sync_session.get_transaction()
    if transaction is not None and uow.session.info.get(ROUTING_LOCK_HELD) is transaction:
        return
    conn = await driver_connection(uow.session)
    await conn.execute("SELECT pg_advisory_xact_lock($1)", ROUTING_LOCK_KEY)
    uow.session.info[ROUTING_LOCK_HELD] = uow.session.sync_session.get_transaction()


@dataclass
class RoutingContext:
    """What the handlers need beyond the unit of work; metrics are bound once the app exists."""

    settings: Settings
    metrics: handlers.RoutingMetrics | None = None
    rulesets: handlers.RulesetCache = field(default_factory=handlers.RulesetCache)


def build_consumer(context: RoutingContext) -> EventConsumer:
    consumer = EventConsumer("routing")

    @consumer.subscribe(topics.SCORED)
    async def route_lead(event: Event[Any], uow: UnitOfWork) -> None:
        await take_routing_lock(uow)
        await handlers.route_scored_lead(uow.session, uow.outbox, event, uow.now(), context.settings,
                                         context.metrics, context.rulesets)

    @consumer.subscribe(topics.SLA)
    async def reroute_on_breach(event: Event[Any], uow: UnitOfWork) -> None:
        await take_routing_lock(uow)
        await handlers.reroute_on_breach(uow.session, uow.outbox, event, uow.now(), context.settings,
                                         context.metrics, context.rulesets)

    subscribe_erasures(consumer, PERSONAL_DATA)
    return consumer
