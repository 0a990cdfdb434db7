from __future__ import annotations

from fastapi import FastAPI

from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.privacy import privacy_router
from leadflow_kit.retention import webhook_rules
from leadflow_kit.webhooks import run_webhook_dispatcher, webhook_admin_router
from leadflow_routing.api import admin_router, leads_router, rules_router
from leadflow_routing.consumer import RoutingContext, build_consumer
from leadflow_routing.handlers import RoutingMetrics
from leadflow_routing.privacy import PERSONAL_DATA
from leadflow_routing.settings import Settings


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    context = RoutingContext(settings)
    app = create_service_app(
        settings,
        title="LeadFlow routing",
        description="Assigns scored leads to reps by rules, account ownership and team strategy; re-routes on "
        "SLA breach; delivers signed CRM webhooks; takes CRM callbacks.",
        routers=[
            leads_router,
            admin_router,
            rules_router,
            webhook_admin_router(),
            privacy_router(PERSONAL_DATA),
        ],
        consumer=build_consumer(context),
        clock=clock,
        background=[run_webhook_dispatcher],
        retention=webhook_rules(settings),
    )
    context.metrics = RoutingMetrics(app.state.metrics.registry)
    app.state.routing = context
    return app
