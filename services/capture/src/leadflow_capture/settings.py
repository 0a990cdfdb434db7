from __future__ import annotations

from leadflow_kit.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("CAPTURE_")

    service_name: str = "capture"
    port: int = 8001
    database_url: str = "postgresql+asyncpg://leadflow:leadflow@127.0.0.1:15432/leadflow_capture"
