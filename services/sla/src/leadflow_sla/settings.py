from __future__ import annotations

from pydantic import Field

from leadflow_contracts.money import CurrencyCode
from leadflow_kit.settings import service_config
from leadflow_kit.webhooks import WebhookSettings


class Settings(WebhookSettings):
    model_config = service_config("SLA_")

    service_name: str = "sla"
    port: int = 8005
    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow_sla"
    # sla is off the path from a fill to its rep (routing computes the clock the CRM is told): it takes its
    # events in batches of up to a tenth of a second, which a lead's clock and timeline can wait (each event
    # keeps its own time). One transaction a batch instead of one an event: at 25 leads/s sla's CPU per lead
    # fell from 11.6 to 4.0 ms, PostgreSQL's from 18.5 to 13.8, its statements from 24 to 7 (make bench,
    # docs/performance.md, session 13).
    kafka_fetch_min_bytes: int = Field(default=64 * 1024, ge=1)
    kafka_fetch_max_wait_ms: int = 100

    # How often the scheduler looks for clocks whose warning or deadline has come.
    scheduler_interval_seconds: float = 1.0
    # Due clocks claimed per transaction; several replicas each claim their own batch.
    scheduler_batch_size: int = 200
    open_clocks_refresh_seconds: float = 15.0
    # The funnel gauges (leadflow_funnel_leads, leadflow_funnel_campaign_leads): the leads captured in the
    # last days, refreshed this often, with this many sources and campaigns by name.
    funnel_gauge_window_days: float = Field(default=30.0, gt=0)
    funnel_gauge_refresh_seconds: float = Field(default=60.0, gt=0)
    funnel_gauge_names: int = Field(default=10, ge=0, le=100)
    # A closed lead (converted, lost, disqualified or merged into another) keeps its timeline and clocks
    # this long after its last change; its funnel row stays (reports count it, the search finds it) until
    # the person is erased.
    closed_lead_retention_days: float = Field(default=90.0, gt=0)
    # The one currency the funnel's money is reported in; other currencies convert at the rates an admin sets
    # (PUT /v1/admin/currency-rates). Changing it makes the stored rates wrong: set them again with it.
    reporting_currency: CurrencyCode = "USD"
    # A spend CSV import is all-or-nothing, so its size is bounded.
    spend_import_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
