"""Everything enrichment needs, built before its app exists: the platform, its metrics, its store, the
account directory's name index and the firmographics provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends

from leadflow_enrichment.directory import AccountDirectory
from leadflow_enrichment.metrics import EnrichmentMetrics
from leadflow_enrichment.provider import CircuitBreaker, HttpFirmographicsProvider, TtlCache
from leadflow_enrichment.settings import Settings
from leadflow_enrichment.store import EnrichmentStore
from leadflow_kit.clock import Clock
from leadflow_kit.platform import Platform, deps_dependency


@dataclass
class Deps:
    platform: Platform
    settings: Settings
    metrics: EnrichmentMetrics
    store: EnrichmentStore
    directory: AccountDirectory
    # None unless ENRICHMENT_PROVIDER_URL is set.
    provider: HttpFirmographicsProvider | None


def bootstrap(settings: Settings, clock: Clock | None = None) -> Deps:
    platform = Platform.build(settings, clock)
    store = EnrichmentStore()
    return Deps(
        platform=platform,
        settings=settings,
        metrics=EnrichmentMetrics(settings.service_name, platform.metrics.registry),
        store=store,
        directory=AccountDirectory(store, settings.fuzzy_match_threshold),
        provider=firmographics_provider(settings.provider_url, settings, platform.http)
        if settings.provider_url else None,
    )


def firmographics_provider(url: str, settings: Settings, client: httpx.AsyncClient) -> HttpFirmographicsProvider:
    return HttpFirmographicsProvider(
        url,
        client=client,
        timeout_seconds=settings.provider_timeout_seconds,
        retries=settings.provider_retries,
        retry_backoff_seconds=settings.provider_retry_backoff_seconds,
        breaker=CircuitBreaker(settings.provider_breaker_failures, settings.provider_breaker_reset_seconds),
        cache=TtlCache(settings.provider_cache_ttl_seconds, settings.provider_cache_size),
        concurrency=settings.provider_concurrency,
        auth_header=settings.provider_auth_header,
        auth_value=settings.provider_auth_value.get_secret_value() if settings.provider_auth_value else None,
    )


DepsDep = Annotated[Deps, Depends(deps_dependency(Deps))]
