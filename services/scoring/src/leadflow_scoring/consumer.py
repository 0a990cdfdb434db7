"""Scoring's Kafka subscriptions: enriched leads, behavioral activity, sales touches."""

from __future__ import annotations

from typing import Any

from leadflow_contracts import Event, topics
from leadflow_kit.consumer import EventConsumer, UnitOfWork
from leadflow_kit.privacy import subscribe_erasures
from leadflow_scoring import handlers
from leadflow_scoring.handlers import Scoring
from leadflow_scoring.privacy import PERSONAL_DATA


def build_consumer(scoring: Scoring) -> EventConsumer:
    consumer = EventConsumer("scoring")

    @consumer.subscribe(topics.ENRICHED)
    async def on_enriched(event: Event[Any], uow: UnitOfWork) -> None:
        await handlers.score_enriched_lead(event, uow, scoring)

    @consumer.subscribe(topics.ACTIVITY)
    async def on_activity(event: Event[Any], uow: UnitOfWork) -> None:
        await handlers.record_activity(event, uow, scoring)

    @consumer.subscribe(topics.TOUCHED)
    async def on_touched(event: Event[Any], uow: UnitOfWork) -> None:
        await handlers.record_touch(event, uow, scoring)

    subscribe_erasures(consumer, PERSONAL_DATA)

    return consumer
