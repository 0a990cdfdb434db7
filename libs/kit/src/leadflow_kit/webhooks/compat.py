"""Transitional: the dispatcher in the form ``create_service_app(background=[...])`` takes today, a
function of the app. It goes once the services hand ``webhook_dispatcher(platform, metrics)`` (a
``Background``) to the app factory and create their ``WebhookMetrics`` once, in their bootstrap."""

from __future__ import annotations

from fastapi import FastAPI

from leadflow_kit.platform import Platform
from leadflow_kit.webhooks.dispatcher import webhook_dispatcher
from leadflow_kit.webhooks.metrics import WebhookMetrics


async def run_webhook_dispatcher(app: FastAPI) -> None:
    """Background task for ``create_service_app(background=[...])``."""
    platform: Platform = app.state.platform
    await webhook_dispatcher(platform, _webhook_metrics(app)).run()


def _webhook_metrics(app: FastAPI) -> WebhookMetrics:
    # Registered once even if the lifespan runs again (a registry refuses a metric twice).
    existing: WebhookMetrics | None = getattr(app.state, "webhook_metrics", None)
    if existing is None:
        existing = WebhookMetrics(app.state.metrics.registry)
        app.state.webhook_metrics = existing
    return existing
