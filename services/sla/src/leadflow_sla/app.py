from __future__ import annotations

from fastapi import FastAPI

from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.periodic import periodic
from leadflow_kit.privacy import privacy_router
from leadflow_kit.retention import webhook_rules
from leadflow_kit.webhooks import webhook_admin_router, webhook_dispatcher
from leadflow_sla.admin import router as admin_router
from leadflow_sla.api import reports_router, router
from leadflow_sla.bootstrap import bootstrap
from leadflow_sla.consumer import build_consumer
from leadflow_sla.funnel_gauges import FunnelGauges, refresh_funnel_gauges
from leadflow_sla.policy_feed import republish
from leadflow_sla.privacy import PERSONAL_DATA
from leadflow_sla.retention import closed_lead_rules
from leadflow_sla.search_api import search_router
from leadflow_sla.settings import Settings
from leadflow_sla.spend import router as spend_router
from leadflow_sla.trends_api import router as trends_router


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    deps = bootstrap(settings, clock)
    funnel_gauges = FunnelGauges(deps.platform.metrics.registry)
    return create_service_app(
        deps.platform,
        deps,
        title="LeadFlow sla",
        description="Lead timelines, first-touch SLA clocks with warnings and breaches, funnel KPIs.",
        routers=[router, search_router, reports_router, trends_router, admin_router, spend_router,
                 webhook_admin_router(),
                 privacy_router(PERSONAL_DATA)],
        consumer=build_consumer(),
        background=[
            periodic("sla-scheduler", settings.scheduler_interval_seconds, deps.scheduler.fire_due),
            # The gauge is read from the database, so every replica reports the same, whole count.
            periodic("open-clocks-gauge", settings.open_clocks_refresh_seconds, deps.scheduler.refresh_open_clocks),
            webhook_dispatcher(deps.platform, deps.webhook_metrics),
            periodic("funnel-gauges", settings.funnel_gauge_refresh_seconds,
                     lambda: refresh_funnel_gauges(deps, funnel_gauges)),
        ],
        # routing's replica of the SLA configuration (sla.policies) learns all of it after any start.
        on_startup=[lambda: republish(deps)],
        retention=[*webhook_rules(settings), *closed_lead_rules(settings)],
    )
