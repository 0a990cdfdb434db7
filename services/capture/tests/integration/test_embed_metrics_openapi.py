"""The embed script, the metrics capture adds, and the OpenAPI document."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


async def test_embed_script_is_served_with_the_form_baked_in(capture):
    form = await capture.create_form(honeypot_field="_trap")
    response = await capture.client.get(f"/v1/forms/{form['key']}/embed.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/javascript")
    assert "max-age" in response.headers["cache-control"]
    config_line = next(line for line in response.text.splitlines() if "var config =" in line)
    config = json.loads(config_line.split("=", 1)[1].strip().rstrip(";"))
    assert config["formKey"] == form["key"]
    # Without CAPTURE_PUBLIC_BASE_URL a path, resolved by the browser against the script's own URL.
    assert config["endpoint"] == f"/v1/forms/{form['key']}/submissions"
    assert config["honeypotField"] == "_trap"
    assert "__LEADFLOW_CONFIG__" not in response.text


async def test_embed_script_for_an_unknown_form_is_404(capture):
    assert (await capture.client.get("/v1/forms/nope/embed.js")).status_code == 404


async def test_submission_and_lead_metrics(capture):
    form = await capture.create_form()
    url = f"/v1/forms/{form['key']}/submissions"
    await capture.client.post(url, json={"email": "m1@example.com"})
    await capture.client.post(url, json={"email": "m1@example.com"})
    await capture.client.post(url, json={"email": "broken"})
    text = (await capture.client.get("/metrics")).text
    key = form["key"]
    assert f'leadflow_submissions_total{{form="{key}",outcome="accepted"}} 1.0' in text
    assert f'leadflow_submissions_total{{form="{key}",outcome="duplicate"}} 1.0' in text
    assert f'leadflow_submissions_total{{form="{key}",outcome="invalid"}} 1.0' in text
    assert f'leadflow_leads_captured_total{{form="{key}"}} 1.0' in text
    assert "leadflow_http_request_duration_seconds_bucket" in text
    assert 'route="/v1/forms/{form_key}/submissions"' in text
    assert "leadflow_outbox_backlog" in text


async def test_every_endpoint_is_documented_with_examples(capture):
    doc = (await capture.client.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in ("/v1/forms/{form_key}/submissions", "/v1/forms/{form_key}/embed.js", "/v1/forms/{form_key}/thanks",
                 "/v1/activities", "/v1/admin/forms", "/v1/admin/forms/{form_key}"):
        assert path in paths, path
    submission = paths["/v1/forms/{form_key}/submissions"]["post"]
    assert set(submission["requestBody"]["content"]) == {
        "application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
    for status in ("202", "303", "400", "404", "410", "413", "415", "422", "429"):
        assert status in submission["responses"], status
    schemas = doc["components"]["schemas"]
    for name in ("FormCreate", "FormUpdate", "FormPublic", "SubmissionAccepted", "ActivityIn", "ActivityBatch"):
        assert schemas[name].get("examples"), name
    activities = paths["/v1/activities"]["post"]["requestBody"]["content"]["application/json"]
    assert set(activities["examples"]) == {"single", "batch"}
    assert all(operation.get("summary") for item in paths.values() for operation in item.values())


async def test_every_operation_carries_an_example(capture):
    doc = (await capture.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    def has_example(part: object) -> bool:
        text = json.dumps(part)
        if '"example' in text:
            return True
        refs = [chunk.split('"')[0] for chunk in text.split("#/components/schemas/")[1:]]
        return any('"example' in json.dumps(schemas[ref]) for ref in refs)

    missing = [f"{method.upper()} {path}" for path, item in doc["paths"].items() for method, op in item.items()
               if not (has_example(op.get("requestBody", {})) or has_example(op.get("responses", {})))]
    assert missing == []
