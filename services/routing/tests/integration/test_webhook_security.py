"""CRM webhooks cannot be pointed inside, and their signing secrets are encrypted at rest: through
routing's admin API, its dispatcher and its database, with local receivers."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import asyncpg
import pytest
from alembic import command
from cryptography.fernet import Fernet
from routing_harness import (
    MIGRATIONS,
    PLACEHOLDER,
    Env,
    Receiver,
    deliveries,
    produce,
    receiver,
    running,
    scored,
    subscribe,
)
from starlette.responses import Response

from leadflow_kit.db import asyncpg_dsn
from leadflow_kit.migrations import alembic_config, upgrade
from leadflow_kit.secretbox import SecretBox
from leadflow_stack.testing import eventually

pytestmark = pytest.mark.integration

SUBSCRIPTIONS = "/v1/admin/webhooks/subscriptions"


def _url_errors(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["url"], errors
    return [e["message"] for e in errors]


async def test_urls_inside_are_refused_unless_the_allow_list_covers_them(fresh: Env) -> None:
    inside = ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x", "http://[::ffff:127.0.0.1]/x",
              "http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/x", "http://192.168.1.1/x",
              "http://224.0.0.1/x", "http://0.0.0.0/x", "http://2130706433/x"]
    # http allowed (development), but no network allow-listed.
    async with running(fresh.settings(webhook_allowed_networks="")) as svc:
        for url in inside:
            (message,) = _url_errors(await svc.post(SUBSCRIPTIONS, json={"url": url, "event_types": ["lead.routed"]}))
            assert "address" in message, (url, message)
        assert "Invalid port" in _url_errors(
            await svc.post(SUBSCRIPTIONS, json={"url": "http://h:abc/", "event_types": ["lead.routed"]}))[0]
        assert (await svc.get(SUBSCRIPTIONS)).json() == []

    async with receiver(PLACEHOLDER) as crm, running(fresh.settings()) as svc:
        # The suite's allow-list names loopback: the local receiver is fine, a private network still is not.
        subscription_id = await subscribe(svc, crm)
        moved = await svc.patch(f"{SUBSCRIPTIONS}/{subscription_id}", json={"url": "http://10.0.0.7/x"})
        assert "10.0.0.7 is a private address" in _url_errors(moved)[0]
        assert (await svc.get(f"{SUBSCRIPTIONS}/{subscription_id}")).json()["url"] == crm.url

    async with running(fresh.settings(webhook_allow_http=False)) as svc:
        refused = await svc.post(SUBSCRIPTIONS, json={"url": crm.url, "event_types": ["lead.routed"]})
        assert _url_errors(refused) == ["url must use https"]


async def test_a_name_that_resolves_inside_at_send_time_is_refused_even_if_it_was_saved(fresh: Env) -> None:
    crm = Receiver(PLACEHOLDER)
    await crm.start()
    try:
        async with running(fresh.settings()) as svc:
            # Saved while the allow-list covered loopback.
            await subscribe(svc, crm, url=f"http://localhost:{crm.port}/crm/leads")
        # The same subscription, sent by a routing whose allow-list does not cover what `localhost`
        # resolves to when the webhook goes out.
        async with running(fresh.settings(webhook_allowed_networks="")) as svc:
            await produce(fresh.infra.bootstrap_servers, fresh.prefix, [scored()])

            async def attempted() -> list[dict[str, Any]]:
                return [r for r in await deliveries(svc) if r["attempts"] >= 1]

            (row,) = await eventually(attempted)
            detail = (await svc.get(f"/v1/admin/webhooks/deliveries/{row['webhook_id']}")).json()
            assert detail["status"] == "pending"
            assert "refused to connect to localhost: 127.0.0.1 is a loopback address" in detail["last_error"]
            await asyncio.sleep(0.5)
        assert crm.attempts == []
    finally:
        await crm.stop()


async def test_failed_response_bodies_are_kept_to_one_kib(fresh: Env) -> None:
    def verbose_failure(webhook_id: str, seen: int) -> Response | None:
        return Response(status_code=500, content=b"x" * 100_000) if seen == 1 else None

    async with receiver(PLACEHOLDER, verbose_failure) as crm, running(fresh.settings()) as svc:
        await subscribe(svc, crm)
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [scored()])

        async def delivered() -> list[dict[str, Any]]:
            return await deliveries(svc, status="delivered")

        (row,) = await eventually(delivered)
        detail = (await svc.get(f"/v1/admin/webhooks/deliveries/{row['webhook_id']}")).json()
        error = detail["attempt_log"][0]["error"]
        assert error.startswith("HTTP 500: xxx") and len(error.encode()) <= 1024 + len("HTTP 500: ")


async def _subscription_rows(database_url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM webhook_subscription")]
    finally:
        await conn.close()


async def test_signing_secrets_are_encrypted_in_the_database_never_shown_again_nor_logged(
    fresh: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    async with receiver(PLACEHOLDER) as crm, running(fresh.settings()) as svc:
        subscription_id = await subscribe(svc, crm)
        first = crm.secret
        rotated = await svc.post(f"{SUBSCRIPTIONS}/{subscription_id}/rotate-secret", json={"overlap_seconds": 3600})
        second = rotated.json()["secret"]
        crm.secret = second
        lead = scored()
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [lead])

        async def delivered() -> bool:
            return lead.subject in crm.accepted_lead_ids()

        await eventually(delivered)
        shown = (await svc.get(SUBSCRIPTIONS)).text + (await svc.get(f"{SUBSCRIPTIONS}/{subscription_id}")).text
        shown += (await svc.get("/v1/admin/webhooks/deliveries")).text

    rows = await _subscription_rows(fresh.database_url)
    stored = repr(rows)
    for secret in (first, second):
        key_material = secret.removeprefix("whsec_")
        assert key_material not in stored and key_material not in shown and key_material not in caplog.text
    (row,) = [r for r in rows if r["id"] == subscription_id]
    box = fresh.settings().secret_box()
    assert box.decrypt(row["secret_ciphertext"]) == second and box.decrypt(row["previous_secret_ciphertext"]) == first


async def _routing_command(command: str, database_url: str, keys: str) -> None:
    env = {**os.environ, "ROUTING_DATABASE_URL": database_url, "ROUTING_WEBHOOK_ENCRYPTION_KEYS": keys,
           "ROUTING_ENVIRONMENT": "test"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "leadflow_routing", command, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def test_after_an_encryption_key_rotation_old_secrets_still_sign_and_re_encryption_moves_them(
    fresh: Env,
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with receiver(PLACEHOLDER) as crm:
        async with running(fresh.settings(webhook_encryption_keys=old_key)) as svc:
            await subscribe(svc, crm)
        leads = [scored(), scored()]
        # The new key goes in front; the old one stays so rows written under it are still read.
        async with running(fresh.settings(webhook_encryption_keys=f"{new_key},{old_key}")) as svc:
            await produce(fresh.infra.bootstrap_servers, fresh.prefix, leads[:1])

            async def first_delivered() -> bool:
                return leads[0].subject in crm.accepted_lead_ids()

            await eventually(first_delivered)
        await _routing_command("reencrypt-webhook-secrets", fresh.database_url, f"{new_key},{old_key}")
        (row,) = await _subscription_rows(fresh.database_url)
        assert SecretBox([new_key]).decrypt(row["secret_ciphertext"]) == crm.secret
        # Only the new key now: the re-encrypted secret still signs.
        async with running(fresh.settings(webhook_encryption_keys=new_key)) as svc:
            await produce(fresh.infra.bootstrap_servers, fresh.prefix, leads[1:])

            async def second_delivered() -> bool:
                return leads[1].subject in crm.accepted_lead_ids()

            await eventually(second_delivered)
    assert crm.rejected == 0


async def test_the_migration_encrypts_secrets_stored_in_plaintext_and_its_downgrade_decrypts_them(
    infra: Any,
) -> None:
    database_url = await infra.new_database("routing-wh-migrate")
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url, "20261123_0001")
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "INSERT INTO webhook_subscription (id, url, event_types, secret, previous_secret) "
            "VALUES ('sub_old', 'https://crm.example.com/h', '{lead.routed}', 'whsec_current', 'whsec_previous')"
        )
    finally:
        await conn.close()
    key = Fernet.generate_key().decode()
    await _routing_command("migrate", database_url, key)
    (row,) = await _subscription_rows(database_url)
    assert "whsec_" not in repr(row)
    box = SecretBox([key])
    assert box.decrypt(row["secret_ciphertext"]) == "whsec_current"
    assert box.decrypt(row["previous_secret_ciphertext"]) == "whsec_previous"

    # And back: the downgrade decrypts them with the same key.
    config = alembic_config(MIGRATIONS, database_url, {"webhook_secret_box": box})
    await asyncio.to_thread(command.downgrade, config, "20261123_0001")
    (row,) = await _subscription_rows(database_url)
    assert (row["secret"], row["previous_secret"]) == ("whsec_current", "whsec_previous")
