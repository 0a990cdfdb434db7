"""The app is assembled without touching the network, and documents every route."""

from __future__ import annotations

from leadflow_sla.app import create_app
from leadflow_sla.settings import Settings


def test_openapi_documents_the_public_surface() -> None:
    app = create_app(Settings(environment="test"))
    paths = app.openapi()["paths"]
    assert "/v1/leads/{lead_id}/timeline" in paths
    assert "/v1/reports/funnel" in paths
    assert {"get", "post"} <= set(paths["/v1/admin/sla-policies"])
    assert {"get", "patch", "delete"} <= set(paths["/v1/admin/sla-policies/{policy_id}"])
    assert "/v1/admin/sla-calendars/{rep_id}" in paths
    parameters = {p["name"] for p in paths["/v1/reports/funnel"]["get"]["parameters"]}
    assert {"from", "to", "group_by", "format"} <= parameters


def test_settings_default_to_the_dev_stack() -> None:
    settings = Settings()
    assert (settings.service_name, settings.port) == ("sla", 8005)
    assert settings.database_url.endswith("/leadflow_sla")
