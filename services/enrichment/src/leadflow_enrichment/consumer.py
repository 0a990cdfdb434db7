"""Enrichment's Kafka subscriptions: captured form fills, and erasure requests."""

from __future__ import annotations

from leadflow_contracts import LeadCaptured, topics
from leadflow_enrichment import handlers
from leadflow_enrichment.bootstrap import Deps
from leadflow_enrichment.privacy import PERSONAL_DATA
from leadflow_kit.consumer import EventConsumer
from leadflow_kit.privacy import subscribe_erasures


def build_consumer() -> EventConsumer[Deps]:
    consumer = EventConsumer[Deps]("enrichment")
    consumer.subscribe(topics.CAPTURED, LeadCaptured, prepare=handlers.prefetch_firmographics)(
        handlers.enrich_captured_leads)
    subscribe_erasures(consumer, PERSONAL_DATA)
    return consumer
