"""What routing's notifications to reps can be tuned by: Slack, SMTP, the lead link, the sender's pace."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from leadflow_kit.retention import RetentionRule
from leadflow_kit.webhooks import WebhookSettings

# Delays before retry 1, 2, ...: a blip costs seconds, an outage is retried for about a day.
DEFAULT_NOTIFY_RETRY_SCHEDULE = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0)


class NotificationSettings(WebhookSettings):
    """Routing's settings for telling reps of their leads (``ROUTING_NOTIFY_*``, ``ROUTING_SMTP_*``)."""

    # The global Slack incoming-webhook URL; a team's own (admin API, encrypted at rest) wins over it.
    notify_slack_webhook_url: SecretStr | None = None
    # A lead's link in every message: "<base>/<lead id>".
    notify_lead_base_url: str = "http://localhost:8080/leads"
    notify_poll_interval_seconds: float = Field(default=1.0, gt=0)
    notify_batch_size: int = Field(default=20, ge=1, le=500)
    notify_timeout_seconds: float = Field(default=15.0, gt=0)
    notify_retry_schedule_seconds: list[float] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_RETRY_SCHEDULE))
    notify_jitter_ratio: float = Field(default=0.2, ge=0, le=1)
    # Sent notifications are deleted this long after they went out (pending and dead ones stay).
    notify_sent_retention_days: float = Field(default=30.0, gt=0)

    # Email through SMTP; no host means email notifications wait (and retry) until one is set.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # "starttls" upgrades a plain connection (port 587), "tls" is implicit TLS (port 465),
    # "none" is for a local relay or a test server only.
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_from: str = "LeadFlow <leadflow@localhost>"
    # The right-hand side of every Message-ID ("<notification id>@<domain>").
    smtp_message_id_domain: str = "leadflow.localhost"

    @model_validator(mode="after")
    def _no_plain_smtp_in_production(self) -> NotificationSettings:
        if self.environment == "production" and self.smtp_host and self.smtp_security == "none":
            raise ValueError("smtp_security 'none' sends passwords and leads in clear; production refuses it")
        return self

    def retention_rules(self) -> list[RetentionRule]:
        return [RetentionRule("rep_notification", "status = 'sent' AND sent_at < $1",
                              timedelta(days=self.notify_sent_retention_days), name="rep_notification_sent")]

    def lead_url(self, lead_id: str) -> str:
        return f"{self.notify_lead_base_url.rstrip('/')}/{lead_id}"
