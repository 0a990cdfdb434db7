"""The console's keys on the services: minted with the admin key, kept while the service knows them, replaced
(and the old one revoked) when their scopes changed; the settings that keep them encrypted. The services
are in-memory fakes behind httpx.MockTransport."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from leadflow_console.__main__ import main
from leadflow_console.service_keys import (
    CONSOLE_SCOPES,
    KEY_NAME,
    AdminKeys,
    ProvisioningError,
    ServiceKey,
    ensure_keys,
)
from leadflow_console.settings import SERVICES, Settings
from leadflow_kit.secretbox import DEVELOPMENT_KEY

ADMIN = "admin-key-0123456789abcdef0123456789"
URLS = {"capture": "http://capture.test", "routing": "http://routing.test/"}
SECRET = "unit-test-secret-key-0123456789abcdef"


class FakeServices:
    """Each host keeps its API keys: POST mints (admin key only), GET tells known from unknown keys,
    DELETE revokes."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.down: set[str] = set()
        self.calls: list[tuple[str, str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.calls.append((host, request.method, request.url.path))
        if host in self.down:
            self.down.discard(host)  # up on the next try
            return httpx.Response(503)
        keys = self.keys.setdefault(host, {})
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if request.method == "POST":
            assert presented == ADMIN
            body = httpx.Response(200, content=request.content).json()
            key_id = f"k{next(self.ids)}"
            key = f"lf_{host}_{key_id}"
            keys[key] = {"id": key_id, "name": body["name"], "scopes": body["scopes"]}
            return httpx.Response(201, json={"id": key_id, "key": key, "scopes": body["scopes"]})
        if request.method == "DELETE":
            assert presented == ADMIN
            key_id = request.url.path.rsplit("/", 1)[1]
            found = [k for k, v in keys.items() if v["id"] == key_id]
            for key in found:
                del keys[key]
            return httpx.Response(204 if found else 404)
        return httpx.Response(200 if presented in keys else 401, json=[])

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


async def test_a_first_run_mints_one_key_per_service_with_the_consoles_scopes() -> None:
    services = FakeServices()
    keys = await ensure_keys(URLS, dict.fromkeys(URLS, ADMIN), {}, transport=services.transport())
    assert set(keys) == set(URLS)
    for service, key in keys.items():
        assert key.scopes == CONSOLE_SCOPES[service]
        assert services.keys[f"{service}.test"][key.key] == {"id": key.key_id, "name": KEY_NAME,
                                                             "scopes": list(CONSOLE_SCOPES[service])}


async def test_a_key_the_service_still_knows_is_kept_without_the_admin_key() -> None:
    services = FakeServices()
    first = await ensure_keys(URLS, dict.fromkeys(URLS, ADMIN), {}, transport=services.transport())
    again = await ensure_keys(URLS, dict.fromkeys(URLS, None), first, transport=services.transport())
    assert again == first
    assert all(method == "GET" for _, method, _ in services.calls[len(URLS):])


async def test_a_key_the_service_forgot_is_minted_again() -> None:
    services = FakeServices()
    first = await ensure_keys(URLS, dict.fromkeys(URLS, ADMIN), {}, transport=services.transport())
    services.keys["capture.test"].clear()  # its database was reset
    again = await ensure_keys(URLS, dict.fromkeys(URLS, ADMIN), first, transport=services.transport())
    assert again["routing"] == first["routing"]
    assert again["capture"] != first["capture"] and again["capture"].key in services.keys["capture.test"]


async def test_a_key_with_other_scopes_is_replaced_and_the_old_one_revoked() -> None:
    services = FakeServices()
    first = await ensure_keys({"capture": URLS["capture"]}, {"capture": ADMIN}, {}, transport=services.transport())
    narrower = {"capture": ServiceKey(first["capture"].key, ("forms:read",), first["capture"].key_id)}
    again = await ensure_keys({"capture": URLS["capture"]}, {"capture": ADMIN}, narrower,
                              transport=services.transport())
    assert again["capture"].scopes == CONSOLE_SCOPES["capture"]
    assert list(services.keys["capture.test"]) == [again["capture"].key]


async def test_minting_without_an_admin_key_names_the_setting_to_give() -> None:
    with pytest.raises(ProvisioningError, match="CAPTURE_ADMIN_API_KEY"):
        await ensure_keys({"capture": URLS["capture"]}, {"capture": None}, {}, transport=FakeServices().transport())


async def test_a_service_not_up_yet_is_waited_for_within_the_deadline_only() -> None:
    services = FakeServices()
    services.down.add("capture.test")
    keys = await ensure_keys({"capture": URLS["capture"]}, {"capture": ADMIN}, {}, wait_seconds=5,
                             transport=services.transport())
    assert keys["capture"].key in services.keys["capture.test"]
    services.down.add("capture.test")
    with pytest.raises(ProvisioningError, match="unreachable"):
        await ensure_keys({"capture": URLS["capture"]}, {"capture": ADMIN}, {}, wait_seconds=0,
                          transport=services.transport())


def test_admin_keys_are_read_under_the_services_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING_ADMIN_API_KEY", ADMIN)
    monkeypatch.delenv("CAPTURE_ADMIN_API_KEY", raising=False)
    admin = AdminKeys()
    assert admin.of("routing") == ADMIN and admin.of("capture") is None


def test_production_needs_its_own_encryption_keys_unless_every_service_key_is_given() -> None:
    production = {"environment": "production", "secret_key": SECRET}
    for keys in (None, DEVELOPMENT_KEY):
        with pytest.raises(ValidationError, match="encryption_keys must be set"):
            Settings(**production, encryption_keys=keys)
    with pytest.raises(ValidationError, match="not a Fernet key"):
        Settings(**production, encryption_keys="REPLACE_ME")
    own = Fernet.generate_key().decode()
    kept = Settings(**production, encryption_keys=own).secret_box().encrypt("lf_key")
    rotated = Settings(**production, encryption_keys=f"{Fernet.generate_key().decode()},{own}").secret_box()
    assert rotated.decrypt(kept) == "lf_key" and rotated.reencrypt(kept) is not None
    given = Settings(**production, **{f"{service}_api_key": f"lf_{service}" for service in SERVICES})
    assert given.services_without_key() == []


def test_provision_keys_is_a_subcommand_with_a_wait(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["provision-keys", "--help"])
    assert exited.value.code == 0
    assert "--wait SECONDS" in capsys.readouterr().out
