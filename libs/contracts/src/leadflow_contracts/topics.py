"""Kafka topic names. Every lead event is keyed by lead id, so one lead's events stay ordered."""

from __future__ import annotations

CAPTURED = "leads.captured"
ENRICHED = "leads.enriched"
SCORED = "leads.scored"
ROUTED = "leads.routed"
ACTIVITY = "leads.activity"
TOUCHED = "leads.touched"
SLA = "leads.sla"
DELIVERED = "leads.delivered"

LEAD_TOPICS: tuple[str, ...] = (CAPTURED, ENRICHED, SCORED, ROUTED, ACTIVITY, TOUCHED, SLA, DELIVERED)
# Data-subject requests (erasure), keyed by the request id.
PRIVACY = "privacy.requests"
# sla's SLA configuration, replicated to routing: keyed by policy id, or ``rep:<rep id>`` for a rep's own
# calendar. Compacted: the latest record of each key is kept for good, so a fresh consumer learns it all.
SLA_POLICIES = "sla.policies"
COMPACTED_TOPICS: tuple[str, ...] = (SLA_POLICIES,)
EVENT_TOPICS: tuple[str, ...] = (*LEAD_TOPICS, PRIVACY, SLA_POLICIES)
DLQ_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


def topic_config(name: str, prefix: str = "") -> dict[str, str]:
    """The Kafka configuration a topic is created with beyond the broker's defaults."""
    if name in (f"{prefix}{topic}" for topic in COMPACTED_TOPICS):
        return {"cleanup.policy": "compact"}
    return {}


def all_topics(prefix: str = "") -> list[str]:
    """Every topic the pipeline needs, dead-letter topics included, with an optional test prefix."""
    names = [*EVENT_TOPICS, *(dead_letter_topic(t) for t in EVENT_TOPICS)]
    return [f"{prefix}{name}" for name in names]
