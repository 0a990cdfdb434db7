from __future__ import annotations

from fastapi import FastAPI

from leadflow_enrichment.admin import accounts_router
from leadflow_enrichment.api import leads_router
from leadflow_enrichment.bootstrap import bootstrap
from leadflow_enrichment.consumer import build_consumer
from leadflow_enrichment.handlers import refresh_quality_gauges
from leadflow_enrichment.privacy import PERSONAL_DATA
from leadflow_enrichment.reports import reports_router
from leadflow_enrichment.settings import Settings
from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.periodic import periodic
from leadflow_kit.privacy import privacy_router


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    deps = bootstrap(settings, clock)
    return create_service_app(
        deps.platform,
        deps,
        title="LeadFlow enrichment",
        description="Normalizes captured form fills, classifies emails, merges repeat fills of one person, "
                    "matches leads to accounts and adds firmographics; publishes lead.enriched. "
                    "`/v1/admin/*` and `/v1/leads/*` need an API key.",
        routers=[accounts_router, leads_router, reports_router, privacy_router(PERSONAL_DATA)],
        consumer=build_consumer(),
        background=[periodic("data-quality-gauges", settings.data_quality_refresh_seconds,
                             lambda: refresh_quality_gauges(deps))],
    )
