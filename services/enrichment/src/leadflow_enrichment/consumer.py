"""Enrichment's Kafka subscription: captured form fills."""

from __future__ import annotations

from typing import Any

from leadflow_contracts import Event, topics
from leadflow_enrichment import handlers
from leadflow_enrichment.handlers import Enrichment
from leadflow_enrichment.privacy import PERSONAL_DATA
from leadflow_enrichment.provider import Lookup
from leadflow_kit.consumer import EventConsumer, UnitOfWork
from leadflow_kit.db import Database
from leadflow_kit.privacy import subscribe_erasures


def build_consumer(enrichment: Enrichment) -> EventConsumer:
    consumer = EventConsumer("enrichment")

    async def prefetch(events: list[Event[Any]], db: Database) -> dict[str, tuple[str, Lookup]]:
        return await handlers.prefetch_firmographics(events, db, enrichment)

    @consumer.subscribe(topics.CAPTURED, prepare=prefetch)
    async def on_captured(event: Event[Any], uow: UnitOfWork) -> None:
        await handlers.enrich_captured_lead(event, uow, enrichment)

    subscribe_erasures(consumer, PERSONAL_DATA)

    return consumer
