from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from leadflow_kit.settings import service_config
from leadflow_routing.notifications.settings import NotificationSettings

DEV_DEMO_WEBHOOK_SECRET = "whsec_bGVhZGZsb3ctZGVtby13ZWJob29rLXNlY3JldC0wMQ=="


class Settings(NotificationSettings):
    model_config = service_config("ROUTING_")

    service_name: str = "routing"
    port: int = 8004
    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow_routing"
    # Where leads wait when no rule matches or a whole team is unavailable.
    default_fallback_queue: str = "unassigned"
    default_escalate_after_breaches: int = Field(default=2, ge=1)
    # A lead the CRM marks disqualified or recycled waits in nurture at least this long before it can be
    # handed to sales again, however high it scores (default 30 days).
    recycle_cooldown_seconds: float = Field(default=30 * 24 * 3600, ge=0)

    # How long a batch of scored leads waits for a team's or rep's row another transaction holds (a slow
    # handling of that team elsewhere, an admin's long transaction) before the leads that need it are
    # parked and the rest of the batch goes on; the parked ones are routed, in order, once it is free.
    busy_row_grace_seconds: float = Field(default=0.25, ge=0, le=30)
    # A row found held past the grace is presumed held this long (or until a batch gets it): batches
    # meanwhile park the leads that need it without waiting the grace again.
    busy_row_memory_seconds: float = Field(default=5.0, ge=0, le=600)
    # How often the parked-lead drainer looks while leads are parked (it is woken at once when this
    # process parks one); with none parked it looks every parked_idle_interval_seconds (another
    # replica may park some).
    parked_drain_interval_seconds: float = Field(default=0.2, gt=0, le=60)
    parked_idle_interval_seconds: float = Field(default=2.0, gt=0, le=600)
    parked_batch_size: int = Field(default=200, ge=1, le=5000)

    # `seed-demo` subscribes this URL (with this secret) to lead.routed, for `make up` and the e2e tests.
    demo_webhook_url: str | None = None
    demo_webhook_secret: SecretStr = SecretStr(DEV_DEMO_WEBHOOK_SECRET)
    # The hand-off policy of the rule set `seed-demo` writes: MQLs to sales (the product's default), or
    # every lead at its first fill (the bench and the e2e tests, which expect every lead routed).
    demo_handoff: Literal["first_fill", "mql"] = "mql"

    @model_validator(mode="after")
    def _no_demo_webhook_secret_in_production(self) -> Settings:
        if self.environment == "production" and self.demo_webhook_secret.get_secret_value() == DEV_DEMO_WEBHOOK_SECRET:
            raise ValueError("demo_webhook_secret is the published demo secret; production refuses it")
        return self
