"""Routing's event subscriptions: scored leads are routed, SLA breaches re-routed; captured leads and
SLA clocks become the CRM's lifecycle webhooks."""

from __future__ import annotations

from leadflow_contracts import (
    LeadCaptured,
    LeadScored,
    LeadSla,
    LeadSlaStarted,
    SlaCalendarChanged,
    SlaPolicyChanged,
    topics,
)
from leadflow_kit.consumer import EventConsumer
from leadflow_kit.privacy import subscribe_erasures
from leadflow_routing import handlers, lifecycle, sla_replica
from leadflow_routing.bootstrap import Deps
from leadflow_routing.privacy import PERSONAL_DATA


def build_consumer() -> EventConsumer[Deps]:
    consumer = EventConsumer[Deps]("routing")
    consumer.subscribe(topics.SCORED, LeadScored)(handlers.route_scored_leads)
    consumer.subscribe(topics.SLA, LeadSla)(handlers.reroute_on_breaches)
    # Only for the CRM's lifecycle webhooks (lifecycle.py), off the routing path.
    consumer.subscribe(topics.CAPTURED, LeadCaptured, wanted=lifecycle.captured_wanted)(lifecycle.deliver_captured)
    consumer.subscribe(topics.SLA, LeadSlaStarted)(lifecycle.deliver_sla_started)
    # sla's policies and reps' calendars, for the due time on the lead.routed webhook (sla_replica.py).
    consumer.subscribe(topics.SLA_POLICIES, SlaPolicyChanged)(sla_replica.replicate_policies)
    consumer.subscribe(topics.SLA_POLICIES, SlaCalendarChanged)(sla_replica.replicate_calendars)
    subscribe_erasures(consumer, PERSONAL_DATA)
    return consumer
