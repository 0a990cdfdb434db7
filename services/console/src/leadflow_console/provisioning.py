"""``provision-keys``: the console's keys on the five services, kept encrypted in its own database, and
how ``serve`` reads them back.

A container deployment runs ``provision-keys`` once before ``serve`` (a Compose one-shot, an init
container in Kubernetes) with the services' admin keys; ``serve`` runs without them. A key given as
``CONSOLE_<SERVICE>_API_KEY`` wins: it is neither minted nor read from the database (``make up``
passes all five).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import httpx
from pydantic import SecretStr

from leadflow_console import store
from leadflow_console.service_keys import AdminKeys, ServiceKey, ensure_keys
from leadflow_console.settings import SERVICES, Settings
from leadflow_kit.db import Database

log = logging.getLogger(__name__)

# A service that keeps refusing the console's key must not cost a database read on every request.
REREAD_SECONDS = 10.0


async def provision_keys(settings: Settings, admin_keys: AdminKeys, *, wait_seconds: float = 0.0,
                         transport: httpx.AsyncBaseTransport | None = None) -> dict[str, str]:
    """Make sure the database keeps a valid key of the console on every service whose key the settings do
    not give; returns what happened per service ("given", "kept", "re-encrypted" or "minted").

    Provisioning holds a database lock, so pods starting together mint one key per service, not one each.
    A kept key is moved under the first encryption key (rotation); one no configured key opens is minted
    again."""
    outcome = {service: "given" for service in SERVICES if settings.service_api_key(service) is not None}
    wanted = settings.services_without_key()
    if not wanted:
        return outcome
    box = settings.secret_box()
    db = Database(settings.database_url, pool_size=1)
    try:
        async with store.service_keys_locked(db) as session:
            kept: dict[str, ServiceKey] = {}
            tokens: dict[str, str] = {}
            for row in await store.service_key_rows(session):
                try:
                    kept[row.service] = ServiceKey(box.decrypt(row.encrypted_key), tuple(row.scopes), row.key_id)
                except ValueError:
                    log.warning("no configured encryption key opens the console's key on %s; minting a new one",
                                row.service)
                    continue
                tokens[row.service] = row.encrypted_key
            keys = await ensure_keys({service: settings.service_url(service) for service in wanted},
                                     {service: admin_keys.of(service) for service in wanted}, kept,
                                     wait_seconds=wait_seconds, transport=transport)
            for service, key in keys.items():
                if key != kept.get(service):
                    assert key.key_id is not None  # a minted key has its id
                    await store.save_service_key(session, service, key.key_id, box.encrypt(key.key), key.scopes)
                    outcome[service] = "minted"
                elif (token := box.reencrypt(tokens[service])) is not None:
                    await store.reencrypt_service_key(session, service, token)
                    outcome[service] = "re-encrypted"
                else:
                    outcome[service] = "kept"
    finally:
        await db.dispose()
    return outcome


async def with_kept_keys(settings: Settings) -> Settings:
    """``settings`` with the keys ``provision-keys`` keeps filled in where the settings give none."""
    missing = settings.services_without_key()
    if not missing:
        return settings
    db = Database(settings.database_url, pool_size=1)
    try:
        encrypted = await store.service_key_map(db)
    finally:
        await db.dispose()
    box = settings.secret_box()
    found: dict[str, SecretStr] = {}
    for service in missing:
        token = encrypted.get(service)
        try:
            if token is not None:
                found[f"{service}_api_key"] = SecretStr(box.decrypt(token))
                continue
        except ValueError:
            log.error("no configured encryption key opens the console's key on %s", service)
        log.error("the console has no API key for %s: run `leadflow-console provision-keys` or set "
                  "CONSOLE_%s_API_KEY; its pages show a configuration problem until then", service, service.upper())
    return settings.model_copy(update=found)


class KeptKeys:
    """The keys ``provision-keys`` keeps, read again when a service refuses the one ``serve`` started with:
    another pod's ``provision-keys`` replaced it (new scopes) and revoked the old one. Only for the services
    whose key the settings do not give, and at most once per ``REREAD_SECONDS`` a service."""

    def __init__(self, settings: Settings, db: Database, services: Iterable[str]) -> None:
        self._box = settings.secret_box()
        self._db = db
        self._services = frozenset(services)
        self._last_read: dict[str, float] = {}

    async def replacement(self, service: str, refused: str) -> str | None:
        """The key kept for ``service`` now, if it is not ``refused``."""
        now = time.monotonic()
        if service not in self._services or now - self._last_read.get(service, -REREAD_SECONDS) < REREAD_SECONDS:
            return None
        self._last_read[service] = now
        try:
            token = (await store.service_key_map(self._db)).get(service)
            key = self._box.decrypt(token) if token is not None else None
        except ValueError:
            log.error("no configured encryption key opens the console's key on %s", service)
            return None
        except Exception as exc:  # the database is down: the refusal stands, as without a kept key
            log.warning("could not read the console's kept key on %s (%s)", service, type(exc).__name__)
            return None
        return key if key != refused else None
