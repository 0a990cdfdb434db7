"""The console's own API key on each of the five services: which scopes it holds, and how it is minted
with a service's admin key, kept while the service still knows it, and replaced when it does not.

Two callers share this: ``make up`` (leadflow_stack.console keeps the keys in a 0600 file and passes
them as ``CONSOLE_<SERVICE>_API_KEY``) and ``leadflow-console provision-keys`` (a container deployment's
one-shot before ``serve``: the keys are kept encrypted in the console's database, so ``serve`` never
holds an admin key).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

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
# Answers that mean "not up yet" (a service starting beside the console), not "refused".
UNAVAILABLE = frozenset({502, 503, 504})


class ProvisioningError(Exception):
    """A key could not be minted (no admin key, or the service refused it)."""


class _NotUpYet(Exception):
    pass


@dataclass(frozen=True)
class ServiceKey:
    """A key of the console on one service; ``key_id`` is the service's id of it (to revoke it), unknown
    for keys kept before ids were."""

    key: str
    scopes: tuple[str, ...]
    key_id: str | None = None


class AdminKeys(BaseSettings):
    """The five services' admin keys, under the services' own names (``CAPTURE_ADMIN_API_KEY``, ...), so a
    deployment hands ``provision-keys`` the very secret the service reads. Only ``provision-keys`` reads
    them; ``serve`` never does."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", env_file=None, hide_input_in_errors=True)

    capture_admin_api_key: SecretStr | None = None
    enrichment_admin_api_key: SecretStr | None = None
    scoring_admin_api_key: SecretStr | None = None
    routing_admin_api_key: SecretStr | None = None
    sla_admin_api_key: SecretStr | None = None

    def of(self, service: str) -> str | None:
        key: SecretStr | None = getattr(self, f"{service}_admin_api_key")
        return key.get_secret_value() if key else None


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def mint_key(client: httpx.AsyncClient, url: str, admin_key: str, scopes: tuple[str, ...]) -> ServiceKey:
    response = await client.post(f"{url}/v1/admin/api-keys", headers=_bearer(admin_key),
                                 json={"name": KEY_NAME, "scopes": list(scopes)})
    if response.status_code in UNAVAILABLE:
        raise _NotUpYet(f"answered {response.status_code}")
    if response.status_code != 201:
        raise ProvisioningError(
            f"minting the console's key at {url} failed: {response.status_code} {response.text[:300]}")
    body = response.json()
    return ServiceKey(key=str(body["key"]), scopes=scopes, key_id=str(body["id"]))


async def still_valid(client: httpx.AsyncClient, url: str, key: str) -> bool:
    # Any scoped route tells a known key (200, or 403 without the scope) from an unknown one (401).
    response = await client.get(f"{url}/v1/admin/api-keys", headers=_bearer(key))
    if response.status_code in UNAVAILABLE:
        raise _NotUpYet(f"answered {response.status_code}")
    return response.status_code != 401


async def _revoke(client: httpx.AsyncClient, url: str, admin_key: str, key_id: str) -> None:
    """Best effort: a replaced key that stays valid is a loose end, not a reason to fail."""
    response = await client.delete(f"{url}/v1/admin/api-keys/{key_id}", headers=_bearer(admin_key))
    if response.status_code not in (204, 404):
        log.warning("revoking the console's replaced key %s at %s failed: %s", key_id, url, response.status_code)


async def ensure_key(client: httpx.AsyncClient, service: str, url: str, admin_key: str | None,
                     current: ServiceKey | None) -> ServiceKey:
    """``current`` while the service knows it and it carries today's scopes; otherwise a key minted with
    ``admin_key`` (the replaced one revoked when the service still knows it)."""
    scopes = CONSOLE_SCOPES[service]
    known = current is not None and await still_valid(client, url, current.key)
    if current is not None and known and current.scopes == scopes:
        return current
    if admin_key is None:
        raise ProvisioningError(f"the console has no valid key on {service} and no admin key to mint one: set "
                                f"{service.upper()}_ADMIN_API_KEY (or CONSOLE_{service.upper()}_API_KEY)")
    log.info("minting the console's API key on %s", service)
    minted = await mint_key(client, url, admin_key, scopes)
    if current is not None and known and current.key_id is not None:
        await _revoke(client, url, admin_key, current.key_id)
    return minted


async def ensure_keys(urls: Mapping[str, str], admin_keys: Mapping[str, str | None],
                      current: Mapping[str, ServiceKey], *, wait_seconds: float = 0.0,
                      transport: httpx.AsyncBaseTransport | None = None) -> dict[str, ServiceKey]:
    """The console's key on each service of ``urls`` (see ``ensure_key``). A service not reachable yet (a
    connection error, 502-504) is retried for up to ``wait_seconds``: in a cluster the console's pod may
    start beside the services."""
    deadline = time.monotonic() + wait_seconds
    keys: dict[str, ServiceKey] = {}
    async with httpx.AsyncClient(timeout=10.0, transport=transport) as client:
        for service, url in urls.items():
            delay = 0.5
            while True:
                try:
                    keys[service] = await ensure_key(client, service, url.rstrip("/"), admin_keys.get(service),
                                                     current.get(service))
                    break
                except (httpx.TransportError, _NotUpYet) as exc:
                    if time.monotonic() + delay > deadline:
                        raise ProvisioningError(f"{service} at {url} is unreachable: {exc!r}") from exc
                    log.info("%s not reachable yet (%r); retrying in %.1f s", service, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
    return keys
