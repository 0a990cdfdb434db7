"""sla listens to every lead topic: each event lands on the lead's timeline and may move its clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leadflow_contracts import Event, topics
from leadflow_kit.consumer import EventConsumer, UnitOfWork
from leadflow_kit.privacy import subscribe_erasures
from leadflow_sla import handlers
from leadflow_sla.metrics import SlaMetrics
from leadflow_sla.privacy import PERSONAL_DATA


def build_consumer(metrics: Callable[[], SlaMetrics]) -> EventConsumer:
    """``metrics`` is looked up per event: the registry only exists once the app does."""
    consumer = EventConsumer("sla")

    async def record(event: Event[Any], uow: UnitOfWork) -> None:
        await handlers.record_event(uow.session, event, metrics())

    for topic in topics.LEAD_TOPICS:
        consumer.subscribe(topic)(record)
    subscribe_erasures(consumer, PERSONAL_DATA)
    return consumer
