"""Routing's event subscriptions: scored leads are routed, SLA breaches re-routed."""

from __future__ import annotations

from leadflow_contracts import LeadScored, LeadSla, topics
from leadflow_kit.consumer import EventConsumer
from leadflow_kit.privacy import subscribe_erasures
from leadflow_routing import handlers
from leadflow_routing.bootstrap import Deps
from leadflow_routing.privacy import PERSONAL_DATA


def build_consumer() -> EventConsumer[Deps]:
    consumer = EventConsumer[Deps]("routing")
    consumer.subscribe(topics.SCORED, LeadScored)(handlers.route_scored_leads)
    consumer.subscribe(topics.SLA, LeadSla)(handlers.reroute_on_breaches)
    subscribe_erasures(consumer, PERSONAL_DATA)
    return consumer
