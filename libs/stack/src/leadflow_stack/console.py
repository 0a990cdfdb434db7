"""What the console needs from a running stack before it starts: its own API key on each of the five
services (minted with the admin key, scoped to what the console's roles need), a secret for its session
cookies, and the first admin's password.

``make up`` keeps them in ``<stack root>/console/`` (readable by the owner only) and reuses them on the
next ``up``: a key the service no longer knows is minted again.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from leadflow_stack.errors import StackError

log = logging.getLogger(__name__)

CONSOLE = "console"
FIRST_ADMIN = "admin"

# The console's key on each service: the union of what its roles do there (docs/security.md, "The
# console"). api-keys:* lets an admin mint and revoke keys from the console, only within these scopes.
CONSOLE_SCOPES: Mapping[str, tuple[str, ...]] = {
    "capture": ("forms:read", "forms:write", "api-keys:read", "api-keys:write"),
    "enrichment": ("accounts:read", "accounts:write", "leads:read", "reports:read", "api-keys:read",
                   "api-keys:write"),
    "scoring": ("scoring:read", "scoring:write", "leads:read", "api-keys:read", "api-keys:write"),
    "routing": ("routing:read", "routing:write", "webhooks:read", "webhooks:write", "api-keys:read",
                "api-keys:write"),
    "sla": ("sla:read", "sla:write", "leads:read", "reports:read", "webhooks:read", "webhooks:write",
            "api-keys:read", "api-keys:write"),
}
KEY_NAME = "leadflow-console"


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


async def mint_key(client: httpx.AsyncClient, url: str, admin_key: str, scopes: tuple[str, ...]) -> str:
    response = await client.post(f"{url}/v1/admin/api-keys", headers={"Authorization": f"Bearer {admin_key}"},
                                 json={"name": KEY_NAME, "scopes": list(scopes)})
    if response.status_code != 201:
        raise StackError(f"minting the console's key at {url} failed: {response.status_code} {response.text[:300]}")
    key: str = response.json()["key"]
    return key


async def _still_valid(client: httpx.AsyncClient, url: str, key: str) -> bool:
    # Any scoped route tells a known key (200, or 403 without the scope) from an unknown one (401).
    response = await client.get(f"{url}/v1/admin/api-keys", headers={"Authorization": f"Bearer {key}"})
    return response.status_code != 401


async def console_secrets(directory: Path, service_urls: Mapping[str, str], admin_key: str) -> ConsoleSecrets:
    """The console's secrets kept in ``directory``, each made on first use; service keys checked and
    re-minted when a service no longer knows them (its database was reset)."""
    secret_key = _private_file(directory / "secret-key", secrets.token_urlsafe(48))
    password_file = directory / "admin-password"
    password = _private_file(password_file, secrets.token_urlsafe(12))
    keys_file = directory / "service-keys.json"
    # {service: {"key": ..., "scopes": [...]}}: a key minted with other scopes than today's is replaced.
    stored: dict[str, dict[str, object]] = json.loads(_private_file(keys_file, "{}"))
    kept: dict[str, dict[str, object]] = {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        for service, url in service_urls.items():
            scopes = CONSOLE_SCOPES[service]
            entry = stored.get(service, {})
            key = entry.get("key")
            if not isinstance(key, str) or entry.get("scopes") != list(scopes) or not await _still_valid(
                    client, url, key):
                log.info("minting the console's API key on %s", service)
                key = await mint_key(client, url, admin_key, scopes)
            kept[service] = {"key": key, "scopes": list(scopes)}
    if kept != stored:
        keys_file.write_text(json.dumps(kept, indent=2))
    keys = {service: str(entry["key"]) for service, entry in kept.items()}
    return ConsoleSecrets(secret_key, password, password_file, keys)
