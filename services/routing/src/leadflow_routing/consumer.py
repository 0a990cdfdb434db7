"""Routing's event subscriptions: scored leads are routed, SLA breaches re-routed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadflow_contracts import Event, topics
from leadflow_kit.consumer import EventConsumer, UnitOfWork
from leadflow_routing import handlers
from leadflow_routing.settings import Settings


@dataclass
class RoutingContext:
    """What the handlers need beyond the unit of work; metrics are bound once the app exists."""

    settings: Settings
    metrics: handlers.RoutingMetrics | None = None


def build_consumer(context: RoutingContext) -> EventConsumer:
    consumer = EventConsumer("routing")

    @consumer.subscribe(topics.SCORED)
    async def route_lead(event: Event[Any], uow: UnitOfWork) -> None:
        await handlers.route_scored_lead(uow.session, uow.outbox, event, uow.now(), context.settings,
                                         context.metrics)

    @consumer.subscribe(topics.SLA)
    async def reroute_on_breach(event: Event[Any], uow: UnitOfWork) -> None:
        await handlers.reroute_on_breach(uow.session, uow.outbox, event, uow.now(), context.settings,
                                         context.metrics)

    return consumer
