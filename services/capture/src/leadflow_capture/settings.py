from __future__ import annotations

from pydantic import Field

from leadflow_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("CAPTURE_")

    service_name: str = "capture"
    port: int = 8001
    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow_capture"

    # Bodies of real form fills are a few KiB; anything near this is abuse or a mistake.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # A batch of up to 100 activities.
    max_activities_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_fields: int = Field(default=100, ge=1)
    max_field_name_length: int = Field(default=100, ge=1)
    max_field_length: int = Field(default=2000, ge=1)
    max_message_length: int = Field(default=10000, ge=1)

    # A second fill of the same email on the same form within this window is the same lead.
    double_submit_window_seconds: float = Field(default=600.0, ge=0)

    # Token buckets, per replica (see ratelimit.py); 0 disables a limit.
    # Generous per address: offices and campuses post from behind one NAT address.
    rate_limit_ip_per_minute: float = Field(default=120.0, ge=0)
    rate_limit_ip_burst: int = Field(default=60, ge=1)
    # Activities (page views while browsing) have their own, larger per-address budget.
    rate_limit_activity_ip_per_minute: float = Field(default=600.0, ge=0)
    rate_limit_activity_ip_burst: int = Field(default=200, ge=1)
    rate_limit_form_per_minute: float = Field(default=12000.0, ge=0)
    rate_limit_form_burst: int = Field(default=1000, ge=1)
    rate_limit_exempt_ips: list[str] = Field(default_factory=list)
    # Behind a proxy the client address is in X-Forwarded-For; never trust it on an open port.
    trust_forwarded_for: bool = False

    # Origins allowed to post activities from a browser (forms have their own list).
    activity_allowed_origins: list[str] = Field(default_factory=lambda: ["*"])
    # How the embed script addresses capture; defaults to the URL the script was fetched from.
    public_base_url: str | None = None
