"""The command line every service shares: ``python -m leadflow_<svc> [serve|migrate|seed-demo]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from leadflow_kit.db import Database
from leadflow_kit.heap import settle_garbage_collector
from leadflow_kit.logging import configure_logging
from leadflow_kit.migrations import upgrade
from leadflow_kit.settings import ServiceSettings
from leadflow_kit.version import VERSION

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
SeedDemo = Callable[[S, Database], Awaitable[None]]


def run_service_cli(
    settings_factory: Callable[[], S],
    app_factory: Callable[[S], FastAPI],
    migrations: Path,
    seed_demo: SeedDemo[S] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    parser = argparse.ArgumentParser(description="Run, migrate or seed one LeadFlow service.")
    parser.add_argument("command", nargs="?", default="serve",
                        choices=["serve", "migrate", "seed-demo", "reencrypt-webhook-secrets"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    args = parser.parse_args(argv)
    settings = settings_factory()
    configure_logging(settings.service_name, settings.log_level)
    if args.command == "reencrypt-webhook-secrets":
        from leadflow_kit.webhooks import WebhookSettings

        if not isinstance(settings, WebhookSettings):
            parser.error(f"{settings.service_name} sends no webhooks")
        asyncio.run(_reencrypt(settings))
    elif args.command == "migrate":
        upgrade(migrations, settings.database_url, attributes=settings.migration_attributes())
    elif args.command == "seed-demo":
        if seed_demo is not None:
            asyncio.run(_seed(seed_demo, settings))
    else:
        app = app_factory(settings)
        settle_garbage_collector()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            # uvicorn would take the client address from X-Forwarded-For whenever the peer is
            # 127.0.0.1; capture decides which proxies it trusts itself (trusted_proxies).
            proxy_headers=False,
            timeout_graceful_shutdown=10,
        )
    sys.exit(0)


async def _seed(seed_demo: SeedDemo[S], settings: S) -> None:
    db = Database(settings.database_url, pool_size=2)
    try:
        await seed_demo(settings, db)
    finally:
        await db.dispose()


async def _reencrypt(settings: ServiceSettings) -> None:
    from leadflow_kit.webhooks import WebhookSettings, reencrypt_webhook_secrets

    assert isinstance(settings, WebhookSettings)
    db = Database(settings.database_url, pool_size=2)
    try:
        changed = await reencrypt_webhook_secrets(db, settings.secret_box())
    finally:
        await db.dispose()
    log.info("re-encrypted the signing secrets of %d webhook subscription(s) under the first key", changed)
