from __future__ import annotations

from fastapi import FastAPI

from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.privacy import privacy_router
from leadflow_kit.retention import webhook_rules
from leadflow_kit.webhooks import webhook_admin_router, webhook_dispatcher
from leadflow_routing import lifecycle
from leadflow_routing.admin import admin_router, rules_router
from leadflow_routing.api import leads_router
from leadflow_routing.bootstrap import bootstrap
from leadflow_routing.consumer import build_consumer
from leadflow_routing.notifications.admin import notifications_router
from leadflow_routing.notifications.sender import notification_sender
from leadflow_routing.parking import parked_lead_drainer
from leadflow_routing.privacy import PERSONAL_DATA
from leadflow_routing.queue_api import queues_router
from leadflow_routing.settings import Settings


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    deps = bootstrap(settings, clock)
    return create_service_app(
        deps.platform,
        deps,
        title="LeadFlow routing",
        description="Assigns scored leads to reps by rules, account ownership and team strategy; re-routes on "
        "SLA breach; delivers signed CRM webhooks; takes CRM callbacks.",
        routers=[
            leads_router,
            queues_router,
            admin_router,
            rules_router,
            webhook_admin_router(event_types=lifecycle.EVENT_TYPES),
            privacy_router(PERSONAL_DATA),
            notifications_router,
        ],
        consumer=build_consumer(),
        background=[webhook_dispatcher(deps.platform, deps.webhook_metrics, deps.webhook_hand_off),
                    notification_sender(deps.platform, settings),
                    parked_lead_drainer(deps)],
        retention=webhook_rules(settings) + settings.retention_rules(),
    )
