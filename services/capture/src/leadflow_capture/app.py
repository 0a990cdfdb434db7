from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from leadflow_capture import activities, admin, api, privacy, privacy_api
from leadflow_capture.bootstrap import bootstrap
from leadflow_capture.consumer import build_consumer
from leadflow_capture.schemas import ActivityBatch, ActivityIn
from leadflow_capture.settings import Settings
from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.privacy import privacy_router
from leadflow_kit.retention import RetentionRule


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    deps = bootstrap(settings, clock)
    app = create_service_app(
        deps.platform,
        deps,
        title="LeadFlow capture",
        description="Takes form fills and behavioral events in, stores them durably, publishes lead.captured "
        "and lead.activity. Form submissions and activities are public; `/v1/admin/*` needs an API key.",
        routers=[api.router, admin.router, activities.router, privacy_api.router,
                 privacy_router(privacy.PERSONAL_DATA)],
        consumer=build_consumer(),
        # Capture keeps accepting leads while Kafka is down: the outbox holds them.
        broker_needed_for_readiness=False,
        # Idempotency keys answer retries for a day; older ones only take space.
        retention=[RetentionRule("idempotency_key", "created_at < $1",
                                 timedelta(hours=settings.idempotency_key_retention_hours))],
    )
    _document_schemas(app, [ActivityIn, ActivityBatch])
    return app


def _document_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Put models that routes read by hand (not through FastAPI's body parsing) into the OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = generate()
            _, definitions = models_json_schema(
                [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
            )
            doc.setdefault("components", {}).setdefault("schemas", {}).update(definitions.get("$defs", {}))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
