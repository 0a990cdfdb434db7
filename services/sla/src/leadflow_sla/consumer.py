"""sla listens to every lead topic: each event lands on the lead's timeline and may move its clock."""

from __future__ import annotations

from leadflow_contracts import (
    LeadActivity,
    LeadCaptured,
    LeadDelivered,
    LeadEnriched,
    LeadRouted,
    LeadScored,
    LeadSla,
    LeadTouched,
    topics,
)
from leadflow_kit.consumer import EventConsumer
from leadflow_kit.privacy import subscribe_erasures
from leadflow_sla import handlers
from leadflow_sla.bootstrap import Deps
from leadflow_sla.privacy import PERSONAL_DATA


def build_consumer() -> EventConsumer[Deps]:
    consumer = EventConsumer[Deps]("sla")
    consumer.subscribe(topics.CAPTURED, LeadCaptured)(handlers.record_lead_events)
    consumer.subscribe(topics.ENRICHED, LeadEnriched)(handlers.record_lead_events)
    consumer.subscribe(topics.SCORED, LeadScored)(handlers.record_lead_events)
    consumer.subscribe(topics.ROUTED, LeadRouted)(handlers.record_lead_events)
    consumer.subscribe(topics.ACTIVITY, LeadActivity)(handlers.record_lead_events)
    consumer.subscribe(topics.TOUCHED, LeadTouched)(handlers.record_lead_events)
    consumer.subscribe(topics.SLA, LeadSla)(handlers.record_lead_events)
    consumer.subscribe(topics.DELIVERED, LeadDelivered)(handlers.record_lead_events)
    subscribe_erasures(consumer, PERSONAL_DATA)
    return consumer
