"""API keys through a real service (the kit's router, the same on all five): no scope escalation,
listings that show nothing of a secret, and a rotated bootstrap key that stops working."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import text

from leadflow_kit import auth
from leadflow_kit.app import app_deps
from leadflow_stack.testing import bearer

pytestmark = pytest.mark.integration


async def mint(capture, headers, scopes: list[str], name: str = "k"):
    return await capture.client.post("/v1/admin/api-keys", headers=headers, json={"name": name, "scopes": scopes})


async def test_a_key_mints_only_keys_within_its_own_scopes(capture, admin_headers):
    minter = await mint(capture, admin_headers, ["api-keys:write", "forms:read"])
    assert minter.status_code == 201
    as_minter = bearer(minter.json()["key"])

    escalated = await mint(capture, as_minter, ["forms:read", "forms:write", "*"])
    assert escalated.status_code == 403
    assert "forms:write" in escalated.json()["detail"] and "*" in escalated.json()["detail"]
    assert sorted(e["message"] for e in escalated.json()["errors"]) == ["*", "forms:write"]
    assert (await mint(capture, as_minter, ["forms:*"])).status_code == 403
    # Not even its own api-keys:write beyond what it holds: a copy of itself is the most it makes.
    assert (await mint(capture, as_minter, ["api-keys:read"])).status_code == 403

    narrower = await mint(capture, as_minter, ["forms:read"])
    assert narrower.status_code == 201
    assert (await capture.client.get("/v1/admin/forms", headers=bearer(narrower.json()["key"]))).status_code == 200

    area = await mint(capture, admin_headers, ["api-keys:write", "forms:*"])
    as_area = bearer(area.json()["key"])
    assert (await mint(capture, as_area, ["forms:write", "forms:*"])).status_code == 201
    assert (await mint(capture, as_area, ["*"])).status_code == 403
    assert (await mint(capture, admin_headers, ["*"])).status_code == 201


async def test_a_key_records_its_use_once_a_minute_not_on_every_request(capture, admin_headers):
    created = (await mint(capture, admin_headers, ["forms:read"], name="busy")).json()
    as_key = bearer(created["key"])

    async def last_used() -> str | None:
        listed = (await capture.client.get("/v1/admin/api-keys", headers=admin_headers)).json()
        return next(k["last_used_at"] for k in listed if k["id"] == created["id"])

    assert await last_used() is None
    for _ in range(20):
        assert (await capture.client.get("/v1/admin/forms", headers=as_key)).status_code == 200
    first = await last_used()
    assert first is not None
    # Within the minute the stored time stays: no request waits on the key row's lock to rewrite it.
    assert (await capture.client.get("/v1/admin/forms", headers=as_key)).status_code == 200
    assert await last_used() == first

async def test_a_verified_key_is_trusted_for_seconds_and_one_revoked_here_is_refused_at_once(capture, admin_headers,
                                                                                        monkeypatch):
    monkeypatch.setattr(auth, "VERIFIED_KEY_SECONDS", 0.5)
    elsewhere = (await mint(capture, admin_headers, ["forms:read"], name="elsewhere")).json()
    assert (await capture.client.get("/v1/admin/forms", headers=bearer(elsewhere["key"]))).status_code == 200
    # Revoked in the database, as another replica would: this process trusts its check until the bound.
    async with app_deps(capture.app).platform.db.transaction() as session:
        await session.execute(text("UPDATE api_key SET revoked_at = now() WHERE id = :id"), {"id": elsewhere["id"]})
    assert (await capture.client.get("/v1/admin/forms", headers=bearer(elsewhere["key"]))).status_code == 200
    await asyncio.sleep(0.6)
    assert (await capture.client.get("/v1/admin/forms", headers=bearer(elsewhere["key"]))).status_code == 401

    here = (await mint(capture, admin_headers, ["forms:read"], name="here")).json()
    assert (await capture.client.get("/v1/admin/forms", headers=bearer(here["key"]))).status_code == 200
    assert (await capture.client.delete(f"/v1/admin/api-keys/{here['id']}", headers=admin_headers)).status_code == 204
    assert (await capture.client.get("/v1/admin/forms", headers=bearer(here["key"]))).status_code == 401


async def test_a_key_revokes_only_keys_within_its_own_scopes(capture, admin_headers):
    minter = bearer((await mint(capture, admin_headers, ["api-keys:write", "forms:read"])).json()["key"])
    admin_copy = (await mint(capture, admin_headers, ["*"])).json()
    refused = await capture.client.delete(f"/v1/admin/api-keys/{admin_copy['id']}", headers=minter)
    assert refused.status_code == 403
    assert (await capture.client.get("/v1/admin/forms", headers=bearer(admin_copy["key"]))).status_code == 200
    own = (await mint(capture, minter, ["forms:read"])).json()
    assert (await capture.client.delete(f"/v1/admin/api-keys/{own['id']}", headers=minter)).status_code == 204
    assert (await capture.client.get("/v1/admin/forms", headers=bearer(own["key"]))).status_code == 401


async def test_listings_show_a_public_id_and_nothing_of_the_secret(capture, admin_headers):
    created = (await mint(capture, admin_headers, ["forms:read"], name="lister")).json()
    key, public_id = created["key"], created["public_id"]
    assert re.fullmatch(r"lf_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    assert key.startswith(f"lf_{public_id}_")
    secret = key[len(f"lf_{public_id}_"):]
    listed = (await capture.client.get("/v1/admin/api-keys", headers=admin_headers)).json()
    row = next(k for k in listed if k["id"] == created["id"])
    assert row["public_id"] == public_id and "key" not in row and "key_prefix" not in row
    text = str(listed)
    assert secret[:4] not in text and key not in text
    # Nor does the bootstrap key show any of itself.
    bootstrap = [k for k in listed if k["id"].startswith("bootstrap-")]
    assert bootstrap and all("test-adm" not in str(k) for k in bootstrap)


# Last in the module: it revokes the admin key the module's other tests use.
async def test_rotating_the_bootstrap_key_revokes_the_old_one(start_capture):
    old, new = "rotation-old-admin-key-0123456789", "rotation-new-admin-key-0123456789"
    async with start_capture(admin_api_key=old) as first:
        assert (await first.client.get("/v1/admin/forms", headers=bearer(old))).status_code == 200
    async with start_capture(admin_api_key=new) as rotated:
        assert (await rotated.client.get("/v1/admin/forms", headers=bearer(new))).status_code == 200
        assert (await rotated.client.get("/v1/admin/forms", headers=bearer(old))).status_code == 401
    # Configuring the old key again does not bring it back.
    async with start_capture(admin_api_key=old) as back:
        assert (await back.client.get("/v1/admin/forms", headers=bearer(old))).status_code == 401

