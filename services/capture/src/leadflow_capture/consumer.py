"""Capture's Kafka subscriptions: data-subject requests (it erases its own rows and gathers the answers)."""

from __future__ import annotations

from leadflow_capture import handlers, privacy
from leadflow_capture.bootstrap import Deps
from leadflow_kit.consumer import EventConsumer
from leadflow_kit.privacy import subscribe_erasures


def build_consumer() -> EventConsumer[Deps]:
    consumer = EventConsumer[Deps]("capture")
    subscribe_erasures(consumer, privacy.PERSONAL_DATA, on_completed=handlers.record_erasure_answers)
    return consumer
