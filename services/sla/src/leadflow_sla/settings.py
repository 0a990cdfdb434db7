from __future__ import annotations

from pydantic import Field

from leadflow_kit.settings import service_config
from leadflow_kit.webhooks import WebhookSettings


class Settings(WebhookSettings):
    model_config = service_config("SLA_")

    service_name: str = "sla"
    port: int = 8005
    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow_sla"

    # How often the scheduler looks for clocks whose warning or deadline has come.
    scheduler_interval_seconds: float = 1.0
    # Due clocks claimed per transaction; several replicas each claim their own batch.
    scheduler_batch_size: int = 200
    open_clocks_refresh_seconds: float = 15.0
    # A closed lead (converted, disqualified or merged into another) keeps its timeline and clocks
    # this long after its last change; its funnel row stays (reports count it, the search finds it) until
    # the person is erased.
    closed_lead_retention_days: float = Field(default=90.0, gt=0)
