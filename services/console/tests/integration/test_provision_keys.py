"""``leadflow-console provision-keys`` against a real capture process and the suite's real PostgreSQL: the
key it mints works on capture, is kept encrypted, is reused without the admin key, is minted again once
capture forgets it, moves under a new encryption key, two runs at once mint one key, not two, and a serving
console takes the key another run replaced its own with. The
other four services' keys are given as CONSOLE_<SERVICE>_API_KEY, so provisioning leaves them alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet

from leadflow_console import provisioning
from leadflow_console.clients import ServiceClients, ServiceError
from leadflow_console.provisioning import KeptKeys, with_kept_keys
from leadflow_console.service_keys import CONSOLE_SCOPES, KEY_NAME
from leadflow_console.settings import Settings
from leadflow_kit.db import Database
from leadflow_kit.migrations import upgrade
from leadflow_kit.secretbox import SecretBox
from leadflow_stack.services import DEV_ADMIN_API_KEY

from .conftest import MIGRATIONS, SECRET

pytestmark = pytest.mark.integration

GIVEN = {service: f"lf_given_{service}" for service in ("enrichment", "scoring", "routing", "sla")}
ENCRYPTION_KEY = Fernet.generate_key().decode()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def capture_url(infra: Any) -> AsyncIterator[str]:
    prefix = infra.new_topic_prefix("console-keys")
    await infra.create_topics(prefix, partitions=1)
    config = await infra.start_service("capture", topic_prefix=prefix)
    try:
        yield config.url
    finally:
        await infra.stop_service("capture")


async def console_database(infra: Any) -> str:
    url = await infra.new_database("console")
    await asyncio.to_thread(upgrade, MIGRATIONS, url)
    return str(url)


def console_env(database_url: str, capture_url: str, *, admin: bool = True,
                encryption_keys: str = ENCRYPTION_KEY) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CONSOLE_", "CAPTURE_"))}
    env.update({"CONSOLE_DATABASE_URL": database_url, "CONSOLE_ENVIRONMENT": "test", "CONSOLE_SECRET_KEY": SECRET,
                "CONSOLE_ENCRYPTION_KEYS": encryption_keys, "CONSOLE_CAPTURE_URL": capture_url,
                **{f"CONSOLE_{service.upper()}_API_KEY": key for service, key in GIVEN.items()}})
    if admin:
        env["CAPTURE_ADMIN_API_KEY"] = DEV_ADMIN_API_KEY
    return env


def provision(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leadflow_console", "provision-keys", "--wait", "10"],
                          capture_output=True, text=True, env=env, timeout=90)


async def kept_rows(database_url: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        return list(await connection.fetch("SELECT * FROM console_service_key ORDER BY service"))
    finally:
        await connection.close()


async def consoles_keys_on_capture(capture_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=capture_url) as client:
        listed = await client.get("/v1/admin/api-keys", headers={"Authorization": f"Bearer {DEV_ADMIN_API_KEY}"})
    assert listed.status_code == 200, listed.text
    return [key for key in listed.json() if key["name"] == KEY_NAME and key.get("revoked_at") is None]


async def test_the_key_is_minted_kept_encrypted_reused_and_minted_again_once_capture_forgets_it(
        infra: Any, capture_url: str) -> None:
    database_url = await console_database(infra)
    first = await asyncio.to_thread(provision, console_env(database_url, capture_url))
    assert first.returncode == 0, first.stderr
    assert "capture minted" in first.stderr and "sla given" in first.stderr
    (row,) = await kept_rows(database_url)
    assert row["service"] == "capture" and list(row["scopes"]) == list(CONSOLE_SCOPES["capture"])
    key = SecretBox([ENCRYPTION_KEY]).decrypt(row["encrypted_key"])
    assert key not in row["encrypted_key"]
    async with httpx.AsyncClient(base_url=capture_url) as client:
        assert (await client.get("/v1/admin/forms", headers={"Authorization": f"Bearer {key}"})).status_code == 200

    # serve reads the kept key; the given ones win.
    settings = Settings(environment="test", secret_key=SECRET, database_url=database_url,
                        encryption_keys=ENCRYPTION_KEY, **{f"{s}_api_key": k for s, k in GIVEN.items()})
    served = await with_kept_keys(settings)
    assert served.service_api_key("capture") == key and served.service_api_key("sla") == GIVEN["sla"]

    again = await asyncio.to_thread(provision, console_env(database_url, capture_url, admin=False))
    assert again.returncode == 0, again.stderr
    assert "capture kept" in again.stderr
    assert [r["encrypted_key"] for r in await kept_rows(database_url)] == [row["encrypted_key"]]

    async with httpx.AsyncClient(base_url=capture_url) as client:
        revoked = await client.delete(f"/v1/admin/api-keys/{row['key_id']}",
                                      headers={"Authorization": f"Bearer {DEV_ADMIN_API_KEY}"})
        assert revoked.status_code == 204
    without_admin = await asyncio.to_thread(provision, console_env(database_url, capture_url, admin=False))
    assert without_admin.returncode == 1 and "CAPTURE_ADMIN_API_KEY" in without_admin.stderr
    minted = await asyncio.to_thread(provision, console_env(database_url, capture_url))
    assert minted.returncode == 0 and "capture minted" in minted.stderr, minted.stderr
    (new_row,) = await kept_rows(database_url)
    assert new_row["key_id"] != row["key_id"]


async def test_a_new_encryption_key_in_front_re_encrypts_the_kept_key(infra: Any, capture_url: str) -> None:
    database_url = await console_database(infra)
    assert (await asyncio.to_thread(provision, console_env(database_url, capture_url))).returncode == 0
    (before,) = await kept_rows(database_url)
    newer = Fernet.generate_key().decode()
    rotated = await asyncio.to_thread(provision, console_env(database_url, capture_url, admin=False,
                                                             encryption_keys=f"{newer},{ENCRYPTION_KEY}"))
    assert rotated.returncode == 0 and "capture re-encrypted" in rotated.stderr, rotated.stderr
    (after,) = await kept_rows(database_url)
    assert after["key_id"] == before["key_id"]
    assert SecretBox([newer]).decrypt(after["encrypted_key"]) == SecretBox([ENCRYPTION_KEY]).decrypt(
        before["encrypted_key"])


async def test_two_pods_provisioning_at_once_mint_one_key(infra: Any, capture_url: str) -> None:
    database_url = await console_database(infra)
    before = {key["id"] for key in await consoles_keys_on_capture(capture_url)}
    env = console_env(database_url, capture_url)
    both = await asyncio.gather(asyncio.to_thread(provision, env), asyncio.to_thread(provision, env))
    assert [run.returncode for run in both] == [0, 0], [run.stderr for run in both]
    new = [key for key in await consoles_keys_on_capture(capture_url) if key["id"] not in before]
    (row,) = await kept_rows(database_url)
    assert [key["id"] for key in new] == [row["key_id"]]


async def test_a_serving_console_takes_the_key_another_provisioning_replaced_its_own_with(
        infra: Any, capture_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    database_url = await console_database(infra)
    assert (await asyncio.to_thread(provision, console_env(database_url, capture_url))).returncode == 0
    (first,) = await kept_rows(database_url)
    settings = Settings(environment="test", secret_key=SECRET, database_url=database_url, capture_url=capture_url,
                        encryption_keys=ENCRYPTION_KEY, **{f"{s}_api_key": k for s, k in GIVEN.items()})
    served = await with_kept_keys(settings)
    db = Database(database_url, pool_size=1)
    clients = ServiceClients(served, replacement=KeptKeys(settings, db, settings.services_without_key()).replacement)
    try:
        assert isinstance(await clients.capture.get("/v1/admin/forms"), list)

        # Another pod's provision-keys replaces the key (here: capture forgot it) while this console serves.
        async with httpx.AsyncClient(base_url=capture_url) as client:
            revoked = await client.delete(f"/v1/admin/api-keys/{first['key_id']}",
                                          headers={"Authorization": f"Bearer {DEV_ADMIN_API_KEY}"})
            assert revoked.status_code == 204
        assert (await asyncio.to_thread(provision, console_env(database_url, capture_url))).returncode == 0
        (second,) = await kept_rows(database_url)
        assert second["key_id"] != first["key_id"]

        assert isinstance(await clients.capture.get("/v1/admin/forms"), list)
        assert clients.capture.http.headers["Authorization"] == (
            f"Bearer {SecretBox([ENCRYPTION_KEY]).decrypt(second['encrypted_key'])}")

        # A refusal soon after is not a reason to read the database again.
        clients.capture.http.headers["Authorization"] = "Bearer lf_not_a_key"
        with pytest.raises(ServiceError) as refused:
            await clients.capture.get("/v1/admin/forms")
        assert refused.value.status == 401
        monkeypatch.setattr(provisioning, "REREAD_SECONDS", 0.0)
        assert isinstance(await clients.capture.get("/v1/admin/forms"), list)
    finally:
        await clients.aclose()
        await db.dispose()
