"""``WebhookSettings``: what a service that sends webhooks can tune (schedule, concurrency, egress,
encryption keys at rest, retention)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from leadflow_kit.egress import EgressPolicy, parse_networks
from leadflow_kit.secretbox import DEVELOPMENT_KEY, SecretBox, parse_keys
from leadflow_kit.settings import ServiceSettings

if TYPE_CHECKING:
    from leadflow_kit.platform import Platform

# Delays after the immediate first attempt: fast at first (a receiver that blips costs seconds), then
# the spec's backoff, about three days in all (1 s + 5 s + ... + 24 h = 75.6 h).
DEFAULT_RETRY_SCHEDULE = (1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0,
                          86400.0)


class WebhookSettings(ServiceSettings):
    """Settings of a service that sends webhooks; tests shorten the schedule."""

    webhook_timeout_seconds: float = 15.0
    # At a graceful stop, sends in flight get this long to end and be recorded; the rest are cut off and
    # their rows released (due at once, for any dispatcher), not left leased for the timeout plus 30 s.
    webhook_stop_grace_seconds: float = Field(default=5.0, ge=0)
    webhook_retry_schedule_seconds: list[float] = Field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    # When set, the schedule becomes base * 2**n (same number of retries): handy for short test runs.
    webhook_retry_base_seconds: float | None = Field(default=None, gt=0)
    webhook_jitter_ratio: float = Field(default=0.2, ge=0, le=1)
    webhook_max_retry_after_seconds: float = 86400.0
    webhook_poll_interval_seconds: float = 0.5
    webhook_batch_size: int = 50
    # While the CPU is short (the same test as consumers' linger: consumer_linger_cpu_pressure), sends that
    # ended wait up to this long, or until webhook_batch_size have, to be recorded in one transaction: a
    # recording costs its transaction, its commit and its lead.delivered produce whatever its size, and on
    # a full machine it was one per send or two (make bench at 100 leads/s: docs/performance.md, session 18).
    # The delivery log, lead.delivered and a lead's next webhook are that much later; a process killed
    # meanwhile sends those webhooks again under the same webhook-id, as it would if killed mid-send.
    # 0 ms, or a kernel without PSI: each round records what has ended.
    webhook_record_linger_ms: float = Field(default=50.0, ge=0, le=1000)
    # Sends in flight at once: in all, and to one subscription (a slow receiver fills only its own
    # share). A subscription's throughput is its share over a send's time: at 8, a CRM answering in
    # 50 ms on a loaded box took at most 160 webhooks/s, and make bench's hop to its receiver took
    # 2.2 s p50 at 100 leads/s; at 32, 0.27 s (docs/performance.md, session 10).
    webhook_concurrency: int = Field(default=128, ge=1)
    webhook_subscription_concurrency: int = Field(default=32, ge=1)
    webhook_secret_overlap_seconds: float = 86400.0
    # Plain http is for local receivers in development and tests; production refuses it.
    webhook_allow_http: bool = False
    # Networks a webhook may reach although they are not public (loopback, private, ...): explicit,
    # comma-separated ("127.0.0.0/8,::1"); empty allows public unicast addresses only.
    webhook_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    # Fernet keys that encrypt signing secrets at rest, comma-separated, newest first: the first
    # encrypts, all decrypt. Required in production; elsewhere a fixed development key stands in.
    webhook_encryption_keys: SecretStr | None = None
    # Each final outcome (delivered/dead) becomes lead.delivered.v1; a service whose webhooks are
    # not lead hand-offs (sla's notifications) may turn that off.
    webhook_emit_delivered_events: bool = True
    # Retention (leadflow_kit.retention.webhook_rules): the attempt log, and deliveries once delivered.
    webhook_attempt_retention_days: float = Field(default=30.0, gt=0)
    webhook_delivered_retention_days: float = Field(default=30.0, gt=0)

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _comma_separated_networks(cls, value: Any) -> Any:
        return list(parse_networks(value)) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _webhook_secrets_and_egress(self) -> WebhookSettings:
        keys = self._encryption_keys()
        if self.environment == "production":
            if not keys or DEVELOPMENT_KEY in keys:
                raise ValueError("webhook_encryption_keys must be set to your own Fernet key(s) in production")
            if self.webhook_allow_http:
                raise ValueError("webhook_allow_http is for development and tests; production sends https only")
        return self

    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy(allow_http=self.webhook_allow_http, allowed_networks=tuple(self.webhook_allowed_networks))

    def secret_box(self) -> SecretBox:
        return SecretBox(self._encryption_keys() or [DEVELOPMENT_KEY])

    def _encryption_keys(self) -> list[str]:
        return parse_keys(self.webhook_encryption_keys.get_secret_value()) if self.webhook_encryption_keys else []

    def migration_attributes(self) -> dict[str, Any]:
        return {**super().migration_attributes(), "webhook_secret_box": self.secret_box()}

    def webhook_retry_schedule(self) -> list[float]:
        """Delays before retry 1, 2, ...; after the last one fails the delivery is dead."""
        base = self.webhook_retry_base_seconds
        if base is None:
            return list(self.webhook_retry_schedule_seconds)
        return [base * 2**n for n in range(len(self.webhook_retry_schedule_seconds))]


def webhook_settings(platform: Platform) -> WebhookSettings:
    """The platform's settings, which must be a service's ``WebhookSettings`` (subclass)."""
    settings = platform.settings
    if not isinstance(settings, WebhookSettings):
        raise TypeError(f"{settings.service_name}'s settings are a {type(settings).__name__}, not WebhookSettings")
    return settings
