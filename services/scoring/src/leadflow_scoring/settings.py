from __future__ import annotations

from pydantic import Field

from leadflow_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("SCORING_")

    service_name: str = "scoring"
    port: int = 8003
    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow_scoring"

    # The sweep re-scores leads whose behavioral points have been fading (or whose model changed),
    # so a stale MQL drops out even when nothing new happens to it.
    decay_sweep_interval_seconds: float = Field(default=300.0, gt=0)
    decay_sweep_min_age_seconds: float = Field(default=3600.0, ge=0)
    decay_sweep_batch_size: int = Field(default=200, gt=0)
    # A YAML/JSON model file to install as the first version instead of the shipped default.
    initial_model_path: str | None = None
    score_history_limit: int = Field(default=100, gt=0)
    dry_run_max_leads: int = Field(default=1000, gt=0)
