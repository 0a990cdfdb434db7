"""``leadflow-console serve|migrate|seed-demo`` (also ``python -m leadflow_console``).

``seed-demo`` (run by ``make up``) creates the first admin, ``admin``, with the password in
``CONSOLE_FIRST_ADMIN_PASSWORD_FILE``, when the console has no admin yet.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from leadflow_console import store
from leadflow_console.app import create_app
from leadflow_console.auth import create_user
from leadflow_console.settings import Settings
from leadflow_kit.db import Database
from leadflow_kit.logging import configure_logging
from leadflow_kit.migrations import upgrade
from leadflow_kit.version import VERSION

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST_ADMIN = "admin"


async def create_first_admin(settings: Settings, password: str) -> None:
    db = Database(settings.database_url, pool_size=1)
    try:
        if await store.count_active_admins(db) > 0 or await store.user_by_username(db, FIRST_ADMIN) is not None:
            log.info("the console has an admin already; none created")
            return
        await create_user(db, username=FIRST_ADMIN, password=password, role="admin", display_name="Admin")
        log.info("created the first admin, %r", FIRST_ADMIN)
    finally:
        await db.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="leadflow-console", description="Run, migrate or seed the LeadFlow console.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the console (the default)")
    sub.add_parser("migrate", help="bring the console's database to the latest revision")
    sub.add_parser("seed-demo", help="create the first admin from CONSOLE_FIRST_ADMIN_PASSWORD_FILE if none exists")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    if args.command == "migrate":
        upgrade(MIGRATIONS, settings.database_url)
    elif args.command == "seed-demo":
        if settings.first_admin_password_file is None:
            log.info("no CONSOLE_FIRST_ADMIN_PASSWORD_FILE: no first admin created")
        else:
            password = Path(settings.first_admin_password_file).read_text().strip()
            asyncio.run(create_first_admin(settings, password))
    else:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                    access_log=False, proxy_headers=False, timeout_graceful_shutdown=10)
    sys.exit(0)


if __name__ == "__main__":
    main()
