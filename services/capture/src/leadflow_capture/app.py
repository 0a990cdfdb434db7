from __future__ import annotations

from fastapi import FastAPI

from leadflow_capture.api import router
from leadflow_capture.settings import Settings
from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    return create_service_app(
        settings,
        title="LeadFlow capture",
        description="Takes form fills and behavioral events in, stores them durably, publishes lead.captured.",
        routers=[router],
        clock=clock,
        # Capture keeps accepting leads while Kafka is down: the outbox holds them.
        broker_needed_for_readiness=False,
    )
