"""Form definitions through the admin API: scopes, validation, update, archive."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.integration


def new_key() -> str:
    return f"form-{uuid.uuid4().hex[:8]}"


async def test_create_read_update_archive_restore(capture, admin_headers):
    key = new_key()
    created = await capture.client.post("/v1/admin/forms", headers=admin_headers, json={
        "key": key, "name": "Webinar signup", "field_mapping": {"mail": "email", "team_size": "employee_count"},
        "required_fields": ["email"], "allowed_origins": ["https://www.example.com", "https://*.example.org"],
        "success_url": "https://www.example.com/ok", "error_url": "https://www.example.com/ko",
        "consent_required": True, "consent_text": "Contact me", "consent_version": "2026-01",
        "honeypot_field": "website_url", "min_fill_seconds": 2.5,
    })
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "active"
    assert body["submission_url"] == f"/v1/forms/{key}/submissions"
    assert body["embed_url"] == f"/v1/forms/{key}/embed.js"
    assert body["honeypot_field"] == "website_url"

    fetched = await capture.client.get(f"/v1/admin/forms/{key}", headers=admin_headers)
    assert fetched.json() == body

    patched = await capture.client.patch(f"/v1/admin/forms/{key}", headers=admin_headers,
                                         json={"name": "Webinar sign-up", "success_url": None})
    assert patched.status_code == 200
    assert patched.json()["name"] == "Webinar sign-up"
    assert patched.json()["success_url"] is None
    assert patched.json()["error_url"] == "https://www.example.com/ko"

    archived = await capture.client.patch(f"/v1/admin/forms/{key}", headers=admin_headers,
                                          json={"status": "archived"})
    assert archived.json()["status"] == "archived"
    assert archived.json()["archived_at"] is not None
    listed = await capture.client.get("/v1/admin/forms?status=archived", headers=admin_headers)
    assert key in [f["key"] for f in listed.json()]
    active = await capture.client.get("/v1/admin/forms?status=active", headers=admin_headers)
    assert key not in [f["key"] for f in active.json()]

    restored = await capture.client.patch(f"/v1/admin/forms/{key}", headers=admin_headers, json={"status": "active"})
    assert restored.json()["status"] == "active"
    post = await capture.client.post(f"/v1/forms/{key}/submissions",
                                     json={"mail": "a@example.com", "consent": "on"})
    assert post.status_code == 202


async def test_duplicate_key_is_409(capture, admin_headers):
    form = await capture.create_form()
    again = await capture.client.post("/v1/admin/forms", headers=admin_headers,
                                      json={"key": form["key"], "name": "again"})
    assert again.status_code == 409


async def test_unknown_form_is_404_in_admin(capture, admin_headers):
    for method in ("get", "delete"):
        response = await getattr(capture.client, method)("/v1/admin/forms/nope-nope", headers=admin_headers)
        assert response.status_code == 404
    patched = await capture.client.patch("/v1/admin/forms/nope-nope", headers=admin_headers, json={"name": "x"})
    assert patched.status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"key": "Bad Key!", "name": "x"}, "key"),
    ({"key": "ok-key", "name": ""}, "name"),
    ({"key": "ok-key", "name": "x", "allowed_origins": ["example.com/path"]}, "allowed_origins"),
    ({"key": "ok-key", "name": "x", "success_url": "javascript:alert(1)"}, "success_url"),
    ({"key": "ok-key", "name": "x", "consent_required": True}, "body"),
    ({"key": "ok-key", "name": "x", "surprise": 1}, "surprise"),
    ({"key": "ok-key", "name": "x", "min_fill_seconds": -1}, "min_fill_seconds"),
])
async def test_invalid_definitions_get_field_errors(capture, admin_headers, body, field):
    response = await capture.client.post("/v1/admin/forms", headers=admin_headers, json=body)
    assert response.status_code == 422
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()


async def test_consent_cannot_be_required_without_text(capture, admin_headers):
    form = await capture.create_form()
    response = await capture.client.patch(f"/v1/admin/forms/{form['key']}", headers=admin_headers,
                                          json={"consent_required": True})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "consent_text_missing"


async def test_scopes_guard_the_admin_api(capture, admin_headers):
    assert (await capture.client.get("/v1/admin/forms")).status_code == 401
    assert (await capture.client.get("/v1/admin/forms", headers={"X-API-Key": "wrong"})).status_code == 401
    reader = await capture.client.post("/v1/admin/api-keys", headers=admin_headers,
                                       json={"name": "reader", "scopes": ["forms:read"]})
    read_key = {"Authorization": f"Bearer {reader.json()['key']}"}
    assert (await capture.client.get("/v1/admin/forms", headers=read_key)).status_code == 200
    denied = await capture.client.post("/v1/admin/forms", headers=read_key, json={"key": new_key(), "name": "x"})
    assert denied.status_code == 403
    writer = await capture.client.post("/v1/admin/api-keys", headers=admin_headers,
                                       json={"name": "writer", "scopes": ["forms:write"]})
    write_key = {"X-API-Key": writer.json()["key"]}
    made = await capture.client.post("/v1/admin/forms", headers=write_key, json={"key": new_key(), "name": "x"})
    assert made.status_code == 201
