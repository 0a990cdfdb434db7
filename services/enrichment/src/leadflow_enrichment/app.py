from __future__ import annotations

import httpx
from fastapi import FastAPI

from leadflow_enrichment.api import accounts_router, leads_router
from leadflow_enrichment.consumer import build_consumer
from leadflow_enrichment.directory import AccountDirectory
from leadflow_enrichment.handlers import Enrichment, EnrichmentMetrics
from leadflow_enrichment.privacy import PERSONAL_DATA
from leadflow_enrichment.provider import CircuitBreaker, HttpFirmographicsProvider, TtlCache
from leadflow_enrichment.settings import Settings
from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.privacy import privacy_router


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    holder: dict[str, FastAPI] = {}

    def http_client() -> httpx.AsyncClient:
        client: httpx.AsyncClient = holder["app"].state.http
        return client

    provider = None
    if settings.provider_url:
        provider = HttpFirmographicsProvider(
            settings.provider_url,
            client=http_client,
            timeout_seconds=settings.provider_timeout_seconds,
            retries=settings.provider_retries,
            retry_backoff_seconds=settings.provider_retry_backoff_seconds,
            breaker=CircuitBreaker(settings.provider_breaker_failures, settings.provider_breaker_reset_seconds),
            cache=TtlCache(settings.provider_cache_ttl_seconds, settings.provider_cache_size),
            concurrency=settings.provider_concurrency,
            auth_header=settings.provider_auth_header,
            auth_value=settings.provider_auth_value.get_secret_value() if settings.provider_auth_value else None,
        )
    enrichment = Enrichment(
        directory=AccountDirectory(settings.fuzzy_match_threshold),
        provider=provider,
        metrics=EnrichmentMetrics(settings.service_name),
        default_phone_region=settings.default_phone_region,
    )
    app = create_service_app(
        settings,
        title="LeadFlow enrichment",
        description="Normalizes captured form fills, classifies emails, merges repeat fills of one person, "
                    "matches leads to accounts and adds firmographics; publishes lead.enriched. "
                    "`/v1/admin/*` and `/v1/leads/*` need an API key.",
        routers=[accounts_router, leads_router, privacy_router(PERSONAL_DATA)],
        consumer=build_consumer(enrichment),
        clock=clock,
    )
    holder["app"] = app
    enrichment.metrics.register(app.state.metrics.registry)
    app.state.enrichment = enrichment
    return app
