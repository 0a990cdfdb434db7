"""What `make up` keeps for the console in <stack root>/console: made once, reused on the next `up`, and a
service key the service forgot minted again (the minting itself is leadflow_console.service_keys'). The
services are fakes behind httpx.MockTransport."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import httpx

from leadflow_console.service_keys import CONSOLE_SCOPES
from leadflow_stack.console import console_secrets

URLS = {"capture": "http://capture.test", "sla": "http://sla.test"}


def fake_services(known: set[str]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        presented = request.headers["authorization"].removeprefix("Bearer ")
        if request.method == "POST":
            assert presented == "dev-admin-key"
            key_id = f"k{len(known) + 1}"
            known.add(f"lf_{request.url.host}_{key_id}")
            return httpx.Response(201, json={"id": key_id, "key": f"lf_{request.url.host}_{key_id}"})
        return httpx.Response(200 if presented in known else 401, json=[])

    return httpx.MockTransport(handle)


async def test_secrets_are_made_once_and_a_forgotten_key_is_minted_again(tmp_path: Path) -> None:
    known: set[str] = set()
    first = await console_secrets(tmp_path, URLS, "dev-admin-key", transport=fake_services(known))
    kept = json.loads((tmp_path / "service-keys.json").read_text())
    assert kept["sla"] == {"key": first.service_keys["sla"], "scopes": list(CONSOLE_SCOPES["sla"]), "id": "k2"}
    assert stat.S_IMODE((tmp_path / "admin-password").stat().st_mode) == 0o600
    assert first.env(URLS)["CONSOLE_CAPTURE_API_KEY"] == first.service_keys["capture"]

    again = await console_secrets(tmp_path, URLS, "dev-admin-key", transport=fake_services(known))
    assert again == first
    known.discard(first.service_keys["capture"])
    after_reset = await console_secrets(tmp_path, URLS, "dev-admin-key", transport=fake_services(known))
    assert after_reset.service_keys["sla"] == first.service_keys["sla"]
    assert after_reset.service_keys["capture"] not in (first.service_keys["capture"], None)


async def test_a_keys_file_from_before_key_ids_is_still_read(tmp_path: Path) -> None:
    known = {"lf_old"}
    (tmp_path / "service-keys.json").write_text(json.dumps(
        {"capture": {"key": "lf_old", "scopes": list(CONSOLE_SCOPES["capture"])}}))
    secrets = await console_secrets(tmp_path, {"capture": URLS["capture"]}, "dev-admin-key",
                                    transport=fake_services(known))
    assert secrets.service_keys == {"capture": "lf_old"}
