"""The app builds without I/O and documents its routes."""

from __future__ import annotations

from leadflow_scoring.app import create_app
from leadflow_scoring.settings import Settings


def test_openapi_lists_the_scoring_routes() -> None:
    app = create_app(Settings(environment="test"))
    paths = app.openapi()["paths"]
    assert {
        "/v1/leads/{lead_id}/score",
        "/v1/admin/scoring-models",
        "/v1/admin/scoring-models/schema",
        "/v1/admin/scoring-models/validate",
        "/v1/admin/scoring-models/dry-run",
        "/v1/admin/scoring-models/rollback",
        "/v1/admin/scoring-models/{model_id}",
        "/v1/admin/scoring-models/{model_id}/dry-run",
        "/v1/admin/scoring-models/{model_id}/activate",
    } <= set(paths)
    assert "application/yaml" in paths["/v1/admin/scoring-models"]["post"]["requestBody"]["content"]


def test_settings_default_to_port_8003_and_the_scoring_database() -> None:
    settings = Settings()
    assert settings.port == 8003
    assert settings.database_url.endswith("/leadflow_scoring")
    assert settings.consumer_group == "scoring"
