from __future__ import annotations

from pydantic import Field, SecretStr

from leadflow_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("ENRICHMENT_")

    service_name: str = "enrichment"
    port: int = 8002
    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow_enrichment"

    # Region used to read national phone numbers when the lead gave no recognizable country.
    default_phone_region: str | None = Field(default=None, min_length=2, max_length=2)
    # token_sort_ratio (0-100) a company name must reach to match an account by name alone.
    fuzzy_match_threshold: float = Field(default=88.0, ge=50, le=100)

    # Optional external firmographics provider: GET <url>?domain=<company domain>.
    provider_url: str | None = None
    provider_auth_header: str = "Authorization"
    provider_auth_value: SecretStr | None = None
    # The whole budget for one lead, retries included: a hung provider costs at most this.
    provider_timeout_seconds: float = Field(default=0.5, gt=0)
    provider_retries: int = Field(default=2, ge=0, le=10)
    provider_retry_backoff_seconds: float = Field(default=0.02, ge=0)
    provider_breaker_failures: int = Field(default=5, ge=1)
    provider_breaker_reset_seconds: float = Field(default=30.0, gt=0)
    provider_cache_ttl_seconds: float = Field(default=3600.0, ge=0)
    provider_cache_size: int = Field(default=10_000, ge=0)
    # Lookups in flight at once; a batch's lookups run side by side, before its transaction.
    provider_concurrency: int = Field(default=8, ge=1, le=100)

    account_import_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)

    # The data-quality gauges: the fills of the last window, refreshed this often, with this many sources
    # by name (the rest as "(other)").
    data_quality_window_seconds: float = Field(default=3600.0, ge=60)
    data_quality_refresh_seconds: float = Field(default=60.0, gt=0)
    data_quality_gauge_sources: int = Field(default=10, ge=0, le=100)
