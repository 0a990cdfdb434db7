"""``leadflow-console serve|migrate|provision-keys|seed-demo|users create`` (also ``python -m leadflow_console``).

``provision-keys`` (a container deployment's one-shot before ``serve``) mints the console's scoped key on
each service with that service's admin key (``CAPTURE_ADMIN_API_KEY``, ...), keeps it encrypted in the
console's database and reuses it while the service knows it; ``serve`` reads the keys from there, so it
never holds an admin key. Keys given as ``CONSOLE_<SERVICE>_API_KEY`` win (``make up`` gives all five).

``seed-demo`` (run by ``make up``) creates the first admin, ``admin``, with the password in
``CONSOLE_FIRST_ADMIN_PASSWORD_FILE``, when the console has no admin yet. ``users create`` adds a user
from the command line (the password from the terminal, or stdin with ``--password-stdin``).

This is a terminal entrypoint: ``users create`` prints its outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from leadflow_console import store
from leadflow_console.app import create_app
from leadflow_console.auth import FIRST_ADMIN, ROLES, USERNAME_PATTERN, Role, create_user, password_problem
from leadflow_console.provisioning import provision_keys, with_kept_keys
from leadflow_console.service_keys import AdminKeys, ProvisioningError
from leadflow_console.settings import Settings
from leadflow_kit.db import Database
from leadflow_kit.heap import settle_garbage_collector
from leadflow_kit.logging import configure_logging
from leadflow_kit.migrations import upgrade
from leadflow_kit.version import VERSION

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


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


async def create_user_from_cli(settings: Settings, username: str, role: Role, password: str, display_name: str | None,
                               rep_id: str | None, team_ids: tuple[str, ...]) -> str | None:
    """Create the user; returns why not, or None."""
    db = Database(settings.database_url, pool_size=1)
    try:
        if await store.user_by_username(db, username) is not None:
            return f"there is already a user {username!r}"
        await create_user(db, username=username, password=password, role=role, display_name=display_name,
                          rep_id=rep_id, team_ids=team_ids)
    finally:
        await db.dispose()
    return None


def _users_create(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    username = args.username.strip().lower()
    if not re.fullmatch(USERNAME_PATTERN, username):
        parser.error(f"username {args.username!r}: lower-case letters, digits, '.', '-', '_' (at most 64)")
    if args.role == "rep" and not args.rep_id:
        parser.error("a rep user needs --rep-id (the routing rep it acts for)")
    if args.role == "sales_manager" and not args.team_id:
        parser.error("a sales manager needs at least one --team-id (the routing teams it manages)")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    problem = password_problem(password)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    refused = asyncio.run(create_user_from_cli(
        settings, username, args.role, password, args.name, args.rep_id if args.role == "rep" else None,
        tuple(args.team_id) if args.role == "sales_manager" else ()))
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    print(f"created {args.role} user {username!r}")
    return 0


def _provision_keys(settings: Settings, wait_seconds: float) -> int:
    try:
        outcome = asyncio.run(provision_keys(settings, AdminKeys(), wait_seconds=wait_seconds))
    except ProvisioningError as exc:
        log.error("provisioning the console's keys failed: %s", exc)
        return 1
    log.info("the console's service keys: %s", ", ".join(f"{s} {what}" for s, what in outcome.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="leadflow-console",
                                     description="Run, migrate, seed or provision the LeadFlow console.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the console (the default)")
    sub.add_parser("migrate", help="bring the console's database to the latest revision")
    provision = sub.add_parser("provision-keys", help="mint (or keep) the console's key on each service with the "
                               "services' <SERVICE>_ADMIN_API_KEY and keep it encrypted in the database")
    provision.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                           help="how long to wait for a service that is not up yet (default 120)")
    sub.add_parser("seed-demo", help="create the first admin from CONSOLE_FIRST_ADMIN_PASSWORD_FILE if none exists")
    users = sub.add_parser("users", help="manage console users").add_subparsers(dest="users_command", required=True)
    create = users.add_parser("create", help="create a user (password from the terminal, or --password-stdin)")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", help="display name (default: the username)")
    create.add_argument("--rep-id", help="the routing rep a rep user acts for")
    create.add_argument("--team-id", action="append", default=[], help="a routing team a sales manager manages")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    if args.command == "users":
        sys.exit(_users_create(parser, args, settings))
    if args.command == "migrate":
        upgrade(MIGRATIONS, settings.database_url)
    elif args.command == "provision-keys":
        sys.exit(_provision_keys(settings, args.wait))
    elif args.command == "seed-demo":
        if settings.first_admin_password_file is None:
            log.info("no CONSOLE_FIRST_ADMIN_PASSWORD_FILE: no first admin created")
        elif not Path(settings.first_admin_password_file).is_file():
            # A deployment mounts the file only when its Secret has the password (deploy/helm, deploy/k8s).
            log.warning("no file %s: no first admin created", settings.first_admin_password_file)
        else:
            password = Path(settings.first_admin_password_file).read_text().strip()
            asyncio.run(create_first_admin(settings, password))
    else:
        kept = settings.services_without_key()
        settings = asyncio.run(with_kept_keys(settings))
        app = create_app(settings, kept_keys=kept)
        settle_garbage_collector()
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                    access_log=False, proxy_headers=False, timeout_graceful_shutdown=10)
    sys.exit(0)


if __name__ == "__main__":
    main()
