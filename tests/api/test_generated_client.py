"""The OpenAPI document is usable: a client generated from capture's live document (by
openapi-python-client) compiles, and creates a form and submits to it on the running service."""

from __future__ import annotations

import asyncio
import compileall
import importlib
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadflow_stack.services import DEV_ADMIN_API_KEY

PACKAGE = "capture_client"


def generate(document_url: str, into: Path) -> Path:
    document = into / "openapi.json"
    document.write_bytes(httpx.get(document_url, timeout=10).raise_for_status().content)
    config = into / "config.json"
    # No post hooks: formatting the generated code is not what is tested. The embed script is text.
    config.write_text(json.dumps({"post_hooks": [], "package_name_override": PACKAGE,
                                  "content_type_overrides": {"application/javascript": "text/plain"}}))
    generator = Path(sys.executable).parent / "openapi-python-client"
    generated = subprocess.run([str(generator), "generate", "--path", str(document), "--config", str(config),
                                "--meta", "none", "--output-path", str(into / PACKAGE)],
                               check=True, capture_output=True, text=True, timeout=120)
    # Every operation and schema is understood: nothing left out of the client.
    assert "warning" not in (generated.stdout + generated.stderr).lower(), generated.stdout + generated.stderr
    return into / PACKAGE


@pytest.mark.integration
async def test_a_generated_client_creates_a_form_and_submits_to_it(infra: Any, tmp_path: Path) -> None:
    prefix = infra.new_topic_prefix("client")
    await infra.create_topics(prefix, partitions=1)
    config = await infra.start_service("capture", {}, topic_prefix=prefix, timeout=90)
    try:
        package = await asyncio.to_thread(generate, f"{config.url}/openapi.json", tmp_path)
        assert compileall.compile_dir(str(package), quiet=1)
        sys.path.insert(0, str(tmp_path))
        try:
            client_module = importlib.import_module(PACKAGE)
            create_form = importlib.import_module(f"{PACKAGE}.api.forms_admin.create_form")
            get_form = importlib.import_module(f"{PACKAGE}.api.forms_admin.get_form")
            submit = importlib.import_module(f"{PACKAGE}.api.submissions.submit")
            models = importlib.import_module(f"{PACKAGE}.models")
        finally:
            sys.path.remove(str(tmp_path))
        key = f"client-{uuid.uuid4().hex[:8]}"
        async with client_module.AuthenticatedClient(base_url=config.url, token=DEV_ADMIN_API_KEY) as admin:
            created = await create_form.asyncio_detailed(client=admin, body=models.FormCreate.from_dict(
                {"key": key, "name": "Generated client", "allowed_origins": ["*"], "required_fields": ["email"]}))
            assert created.status_code == 201, created.content
            assert isinstance(created.parsed, models.FormPublic)
            assert (created.parsed.key, created.parsed.name) == (key, "Generated client")
            fetched = await get_form.asyncio(key, client=admin)
            assert isinstance(fetched, models.FormPublic) and fetched.key == key
        async with client_module.Client(base_url=config.url) as anonymous:
            refused = await create_form.asyncio_detailed(client=anonymous, body=models.FormCreate.from_dict(
                {"key": f"{key}-x", "name": "No key"}))
            assert refused.status_code == 401
            assert isinstance(refused.parsed, models.Problem) and "API key required" in refused.parsed.detail
            fill = models.SubmitJsonBody.from_dict({"email": "ada@example.com", "company": "Engines Ltd"})
            accepted = await submit.asyncio_detailed(key, client=anonymous, body=fill)
            assert accepted.status_code == 202, accepted.content
            assert isinstance(accepted.parsed, models.SubmissionAccepted)
            assert accepted.parsed.lead_id
            invalid = await submit.asyncio_detailed(key, client=anonymous,
                                                    body=models.SubmitJsonBody.from_dict({"company": "No email"}))
            assert invalid.status_code == 422
            assert isinstance(invalid.parsed, models.Problem)
            assert [e.field for e in invalid.parsed.errors] == ["email"]
    finally:
        await infra.stop_service("capture")
