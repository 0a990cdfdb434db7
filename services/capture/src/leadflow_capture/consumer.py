"""Capture's Kafka subscription: data-subject requests (it erases its own rows and gathers the answers)."""

from __future__ import annotations

from leadflow_capture import privacy
from leadflow_kit.consumer import EventConsumer
from leadflow_kit.privacy import subscribe_erasures


def build_consumer() -> EventConsumer:
    consumer = EventConsumer("capture")
    subscribe_erasures(consumer, privacy.PERSONAL_DATA, on_completed=privacy.record_completion)
    return consumer
