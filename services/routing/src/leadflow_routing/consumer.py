"""Routing's event subscriptions: scored leads are routed, SLA breaches re-routed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from leadflow_contracts import Event, topics
from leadflow_kit.consumer import EventConsumer, UnitOfWork
from leadflow_routing import handlers
from leadflow_routing.settings import Settings

# Assignment decisions are serialized per database. Lock order alone cannot prevent deadlocks once
# the kit handles a poll's leads in one transaction: lead 1 may lock an account owner's rep row and
# lead 2 a team, while a concurrent batch does the reverse. Round-robin turns were serialized on the
# team row already, so one transaction-scoped lock costs little and makes deadlocks impossible.
ROUTING_LOCK_KEY = 0x5EAD0001


async def take_routing_lock(uow: UnitOfWork) -> None:
    # Re-entrant inside one transaction: the second lead of a batch passes straight through.
    await uow.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROUTING_LOCK_KEY})


@dataclass
class RoutingContext:
    """What the handlers need beyond the unit of work; metrics are bound once the app exists."""

    settings: Settings
    metrics: handlers.RoutingMetrics | None = None


def build_consumer(context: RoutingContext) -> EventConsumer:
    consumer = EventConsumer("routing")

    @consumer.subscribe(topics.SCORED)
    async def route_lead(event: Event[Any], uow: UnitOfWork) -> None:
        await take_routing_lock(uow)
        await handlers.route_scored_lead(uow.session, uow.outbox, event, uow.now(), context.settings,
                                         context.metrics)

    @consumer.subscribe(topics.SLA)
    async def reroute_on_breach(event: Event[Any], uow: UnitOfWork) -> None:
        await take_routing_lock(uow)
        await handlers.reroute_on_breach(uow.session, uow.outbox, event, uow.now(), context.settings,
                                         context.metrics)

    return consumer
