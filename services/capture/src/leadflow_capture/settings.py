from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from leadflow_capture.web import parse_networks
from leadflow_kit.settings import PLACEHOLDER_SECRETS, ServiceSettings, service_config

DEVELOPMENT_PERSON_KEY_SECRET = "development-person-key-secret-not-for-production"


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

    # Form fills arriving within this many milliseconds of a group's first share its transaction (up to
    # submission_group_max of them), and so do activity posts (in groups of their own); each answers once
    # that transaction committed. 0: every fill and post alone.
    submission_group_window_ms: float = Field(default=1.5, ge=0, le=50)
    submission_group_max: int = Field(default=64, ge=1, le=1000)
    # A group whose window ended while the previous group is still committing waits for that commit and
    # takes what arrived meanwhile: on a busy machine, where a commit takes longer, groups grow with it.
    submission_group_behind_commit: bool = True

    # A second fill of the same email on the same form within this window is the same lead.
    double_submit_window_seconds: float = Field(default=600.0, ge=0)

    # Token buckets, per replica (see ratelimit.py); 0 disables a limit.
    # Generous per address: offices and campuses post from behind one NAT address.
    rate_limit_ip_per_minute: float = Field(default=120.0, ge=0)
    rate_limit_ip_burst: int = Field(default=60, ge=1)
    # Activities (page views while browsing) have their own, larger per-address budget.
    rate_limit_activity_ip_per_minute: float = Field(default=600.0, ge=0)
    rate_limit_activity_ip_burst: int = Field(default=200, ge=1)
    # Per lead (lead id, email or visitor id an activity names), keyed calls included: what one
    # person's browsing produces, well short of lifting a score on its own in a few seconds.
    rate_limit_activity_lead_per_minute: float = Field(default=60.0, ge=0)
    rate_limit_activity_lead_burst: int = Field(default=30, ge=1)
    # What page loads cost: embed.js fetches and CORS preflights (each reads the form), per address.
    rate_limit_page_load_ip_per_minute: float = Field(default=600.0, ge=0)
    rate_limit_page_load_ip_burst: int = Field(default=200, ge=1)
    rate_limit_form_per_minute: float = Field(default=12000.0, ge=0)
    rate_limit_form_burst: int = Field(default=1000, ge=1)
    rate_limit_exempt_ips: list[str] = Field(default_factory=list)
    # Addresses or networks of the proxies in front (e.g. ["10.0.0.0/8"]). A request from one of them
    # counts as the rightmost X-Forwarded-For entry that is not one of them; from anywhere else the
    # header is ignored. Empty: the peer address counts.
    trusted_proxies: list[str] = Field(default_factory=list)
    # Replaced by trusted_proxies (it trusted the leftmost entry, which the client writes).
    trust_forwarded_for: bool | None = None

    # Origins allowed to post activities from a browser (forms have their own list).
    activity_allowed_origins: list[str] = Field(default_factory=lambda: ["*"])
    # How the embed script addresses capture; defaults to the URL the script was fetched from.
    public_base_url: str | None = None

    # The other services' base URLs, for a data-subject export that gathers what each one holds.
    privacy_export_urls: dict[str, str] = Field(default_factory=lambda: {
        "enrichment": "http://127.0.0.1:8002", "scoring": "http://127.0.0.1:8003",
        "routing": "http://127.0.0.1:8004", "sla": "http://127.0.0.1:8005",
    })

    # An Idempotency-Key answers a retried post for this long, then is forgotten.
    idempotency_key_retention_hours: float = Field(default=24.0, gt=0)

    # Keys the opaque id that stands for a person known only by email (an activity's Kafka key and
    # subject). Changing it gives such a person a new id: their next events land on another partition.
    person_key_secret: SecretStr = SecretStr(DEVELOPMENT_PERSON_KEY_SECRET)

    @model_validator(mode="after")
    def _person_key_secret_set_outside_development(self) -> Settings:
        if self.environment == "production":
            secret = self.person_key_secret.get_secret_value()
            if secret == DEVELOPMENT_PERSON_KEY_SECRET or secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 32:
                raise ValueError("person_key_secret must be set to a random value of at least 32 characters")
        return self

    @model_validator(mode="after")
    def _proxies_and_public_url(self) -> Settings:
        if self.trust_forwarded_for is not None:
            raise ValueError("trust_forwarded_for is gone: list the proxies in trusted_proxies instead")
        parse_networks(self.trusted_proxies)
        if self.environment == "production" and not self.public_base_url:
            raise ValueError("public_base_url is required in production: the embed script's endpoint must not "
                             "come from the request's Host header")
        return self
