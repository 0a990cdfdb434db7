from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.privacy import privacy_router
from leadflow_kit.retention import webhook_rules
from leadflow_kit.webhooks import run_webhook_dispatcher, webhook_admin_router
from leadflow_sla.admin import router as admin_router
from leadflow_sla.api import reports_router, router
from leadflow_sla.consumer import build_consumer
from leadflow_sla.metrics import SlaMetrics
from leadflow_sla.notify import enqueue_sla_notification
from leadflow_sla.privacy import PERSONAL_DATA
from leadflow_sla.retention import closed_lead_rules
from leadflow_sla.scheduler import SlaScheduler
from leadflow_sla.settings import Settings

log = logging.getLogger(__name__)


async def start_scheduler(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.scheduler = SlaScheduler(
        app.state.db, app.state.outbox, app.state.clock, app.state.sla_metrics,
        batch_size=settings.scheduler_batch_size,
        notify=lambda session, event, target: enqueue_sla_notification(session, event, event.time, target),
    )


async def run_scheduler(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    await app.state.scheduler.run(settings.scheduler_interval_seconds)


async def refresh_open_clocks(app: FastAPI) -> None:
    """The gauge is read from the database, so every replica reports the same, whole count."""
    settings: Settings = app.state.settings
    while True:
        try:
            await app.state.scheduler.refresh_open_clocks()
        except Exception:
            log.warning("could not count open SLA clocks", exc_info=True)
        await asyncio.sleep(settings.open_clocks_refresh_seconds)


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    holder: list[SlaMetrics] = []
    app = create_service_app(
        settings,
        title="LeadFlow sla",
        description="Lead timelines, first-touch SLA clocks with warnings and breaches, funnel KPIs.",
        routers=[router, reports_router, admin_router,
                 webhook_admin_router(),
                 privacy_router(PERSONAL_DATA)],
        consumer=build_consumer(lambda: holder[0]),
        clock=clock,
        on_startup=[start_scheduler],
        background=[run_scheduler, refresh_open_clocks, run_webhook_dispatcher],
        retention=[*webhook_rules(settings), *closed_lead_rules(settings)],
    )
    app.state.sla_metrics = SlaMetrics(app.state.metrics.registry)
    holder.append(app.state.sla_metrics)
    return app
