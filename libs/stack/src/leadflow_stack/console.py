"""What the console needs from a running stack before it starts: its own API key on each of the five
services (minted with the admin key, scoped to what the console's roles need), a secret for its session
cookies, and the first admin's password.

``make up`` keeps them in ``<stack root>/console/`` (readable by the owner only) and reuses them on the
next ``up``: a key the service no longer knows is minted again. The scopes and the minting are the
console's own (``leadflow_console.service_keys``), shared with ``leadflow-console provision-keys``, which
does the same for a container deployment.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from leadflow_console.service_keys import ProvisioningError, ServiceKey, ensure_keys
from leadflow_stack.errors import StackError

CONSOLE = "console"


@dataclass(frozen=True)
class ConsoleSecrets:
    secret_key: str
    admin_password: str
    admin_password_file: Path
    service_keys: dict[str, str]

    def env(self, service_urls: Mapping[str, str]) -> dict[str, str]:
        """The console's settings (``CONSOLE_...``) for these service URLs."""
        env = {"CONSOLE_SECRET_KEY": self.secret_key,
               "CONSOLE_FIRST_ADMIN_PASSWORD_FILE": str(self.admin_password_file)}
        for service, url in service_urls.items():
            env[f"CONSOLE_{service.upper()}_URL"] = url
            env[f"CONSOLE_{service.upper()}_API_KEY"] = self.service_keys[service]
        return env


def _private_file(path: Path, make: str) -> str:
    """The file's content; created with ``make`` (mode 0600) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        path.touch(mode=0o600)
        path.write_text(make)
    return path.read_text().strip()


async def console_secrets(directory: Path, service_urls: Mapping[str, str], admin_key: str, *,
                          transport: httpx.AsyncBaseTransport | None = None) -> ConsoleSecrets:
    """The console's secrets kept in ``directory``, each made on first use; service keys checked and
    re-minted when a service no longer knows them (its database was reset). ``transport``: unit tests."""
    secret_key = _private_file(directory / "secret-key", secrets.token_urlsafe(48))
    password_file = directory / "admin-password"
    password = _private_file(password_file, secrets.token_urlsafe(12))
    keys_file = directory / "service-keys.json"
    # {service: {"key": ..., "scopes": [...], "id": ...}}: a key minted with other scopes than today's is
    # replaced (leadflow_console.service_keys).
    stored: dict[str, dict[str, Any]] = json.loads(_private_file(keys_file, "{}"))
    current = {service: ServiceKey(entry["key"], tuple(entry.get("scopes") or ()), entry.get("id"))
               for service, entry in stored.items() if isinstance(entry.get("key"), str)}
    try:
        keys = await ensure_keys(service_urls, dict.fromkeys(service_urls, admin_key), current, transport=transport)
    except ProvisioningError as exc:
        raise StackError(str(exc)) from exc
    kept = {service: {"key": key.key, "scopes": list(key.scopes), **({"id": key.key_id} if key.key_id else {})}
            for service, key in keys.items()}
    if kept != stored:
        keys_file.write_text(json.dumps(kept, indent=2))
    return ConsoleSecrets(secret_key, password, password_file, {service: key.key for service, key in keys.items()})
