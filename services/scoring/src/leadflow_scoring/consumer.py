"""Scoring's Kafka subscriptions: enriched leads, behavioral activity, sales touches."""

from __future__ import annotations

from leadflow_contracts import LeadActivity, LeadEnriched, LeadTouched, topics
from leadflow_kit.consumer import EventConsumer
from leadflow_kit.privacy import subscribe_erasures
from leadflow_scoring import handlers
from leadflow_scoring.bootstrap import Deps
from leadflow_scoring.privacy import PERSONAL_DATA


def build_consumer() -> EventConsumer[Deps]:
    consumer = EventConsumer[Deps]("scoring")
    consumer.subscribe(topics.ENRICHED, LeadEnriched)(handlers.score_leads)
    consumer.subscribe(topics.ACTIVITY, LeadActivity)(handlers.record_activities)
    consumer.subscribe(topics.TOUCHED, LeadTouched)(handlers.record_touches)
    subscribe_erasures(consumer, PERSONAL_DATA)
    return consumer
