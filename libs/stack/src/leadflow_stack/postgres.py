"""A private PostgreSQL cluster (initdb + pg_ctl) under a project or test directory.

When we run as root, PostgreSQL refuses to run as root, so every server binary runs as the
``postgres`` OS user (``subprocess`` drops privileges itself, like ``runuser -u postgres``),
and the cluster directory is handed to that user.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from leadflow_stack import procs
from leadflow_stack.errors import StackError

log = logging.getLogger(__name__)

APP_ROLE = "leadflow"
APP_PASSWORD = "leadflow"
SUPERUSER = "postgres"
# Set to a number of ms (``LEADFLOW_PG_AUTO_EXPLAIN_MS=40 make up``): a server started with it logs the plan
# of each statement slower than that (docs/runbook.md, "Statements per service").
AUTO_EXPLAIN_ENV = "LEADFLOW_PG_AUTO_EXPLAIN_MS"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_bin_dir() -> Path:
    """Newest ``/usr/lib/postgresql/<major>/bin`` with pg_ctl, else wherever PATH has it."""
    candidates: list[tuple[int, Path]] = []
    base = Path("/usr/lib/postgresql")
    if base.is_dir():
        for entry in base.iterdir():
            if entry.name.isdigit() and (entry / "bin" / "pg_ctl").exists():
                candidates.append((int(entry.name), entry / "bin"))
    if candidates:
        return max(candidates)[1]
    found = shutil.which("pg_ctl")
    if found is None:
        raise StackError(
            "PostgreSQL server binaries (pg_ctl, initdb) not found in /usr/lib/postgresql/*/bin or PATH; "
            "install them (apt-get install postgresql)"
        )
    return Path(found).resolve().parent


class PostgresCluster:
    """One cluster: ``base_dir/data`` (PGDATA), listening on 127.0.0.1:``port`` with its unix
    socket in the data dir. ``durable=False`` turns off fsync and friends (tests only)."""

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int,
        log_path: Path,
        marker_root: Path,
        durable: bool = True,
        # Five services x (20 + 10 pooled connections, as many again overflowing) + listeners, twice (make up + bench).
        max_connections: int = 600,
    ) -> None:
        self.base_dir = base_dir
        self.port = port
        self.log_path = log_path
        self.marker_root = marker_root
        self.durable = durable
        self.max_connections = max_connections
        self._bin_dir: Path | None = None

    # -- paths and identity ---------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = find_bin_dir()
        return self._bin_dir

    @property
    def _superuser_password_file(self) -> Path:
        return self.base_dir / "superuser.password"

    @staticmethod
    def _as_root() -> bool:
        return os.geteuid() == 0

    def _os_user(self) -> dict[str, Any]:
        """Popen arguments that drop to the postgres user when we are root."""
        if not self._as_root():
            return {}
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise StackError("running as root but there is no 'postgres' OS user to run PostgreSQL as") from exc
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _chown_to_postgres(self, path: Path) -> None:
        if self._as_root():
            shutil.chown(path, user="postgres", group=grp.getgrgid(pwd.getpwnam("postgres").pw_gid).gr_name)

    def _check_reachable(self) -> None:
        # The postgres user needs search permission on every ancestor of the data dir.
        if not self._as_root():
            return
        for parent in self.base_dir.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise StackError(
                    f"the postgres OS user cannot reach {self.base_dir}: {parent} is not searchable by others "
                    f"(chmod o+x {parent}, or put the stack elsewhere)"
                )

    def url(self, database: str) -> str:
        """SQLAlchemy URL as the services expect it."""
        return f"postgresql+asyncpg://{APP_ROLE}:{APP_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """libpq/asyncpg DSN for the application role."""
        return f"postgresql://{APP_ROLE}:{APP_PASSWORD}@127.0.0.1:{self.port}/{database}"

    # -- running binaries -----------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env[procs.MARKER_ENV] = str(self.marker_root.resolve())
        env["LC_ALL"] = "C"
        return env

    def _run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            env=self._env(),
            cwd="/",
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **self._os_user(),
        )

    def running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _initdb(self) -> None:
        self._check_reachable()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o700)
        self._chown_to_postgres(self.base_dir)
        if self.data_dir.exists():
            # Left by an initdb that failed half-way (no PG_VERSION): nothing worth keeping.
            shutil.rmtree(self.data_dir)
        pw_file = self._superuser_password_file
        pw_file.write_text(secrets.token_urlsafe(24))
        pw_file.chmod(0o600)
        self._chown_to_postgres(pw_file)
        result = self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            f"--username={SUPERUSER}",
            f"--pwfile={pw_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            *([] if self.durable else ["--no-sync"]),
        )
        if result.returncode != 0:
            raise StackError(f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# leadflow_stack rewrites this file on every start\ninclude_if_exists = 'leadflow.conf'\n")

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.data_dir}'",
            "max_connections": str(self.max_connections),
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            # Which statements each service runs, and how often: the runbook's first look at a slow
            # database, and the benchmark's statements-per-lead figures.
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "top",
        }
        if explain := os.environ.get(AUTO_EXPLAIN_ENV, "").strip():
            try:
                explain_ms = float(explain)
            except ValueError:
                raise StackError(f"{AUTO_EXPLAIN_ENV} must be a number of milliseconds, not {explain!r}") from None
            # Diagnosis, off by default: the plan, with each node's rows, loops, time and pages, of every
            # statement slower than this many ms, written to the server's log (what pg_stat_statements cannot
            # say: why a statement is slow under load, with the statistics and plan cache of that moment).
            # Timing every node costs CPU on every statement, so the figures of such a run are not the bench's.
            settings |= {
                "shared_preload_libraries": "'pg_stat_statements,auto_explain'",
                "auto_explain.log_min_duration": f"'{explain_ms}ms'",
                "auto_explain.log_analyze": "on",
                "auto_explain.log_buffers": "on",
                "auto_explain.log_nested_statements": "on",
                "auto_explain.log_level": "warning",
            }
        if not self.durable:
            # A test cluster is thrown away: trade crash safety for speed.
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        path = self.data_dir / "leadflow.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._chown_to_postgres(path)

    async def start(self, *, timeout: float = 60.0) -> bool:
        """initdb when needed, start unless already running, ensure the app role exists.

        Returns True when a server was started, False when a running one was kept.
        """
        started = False
        if await asyncio.to_thread(self.running):
            log.info("PostgreSQL already running on 127.0.0.1:%s", self.port)
        else:
            if not (self.data_dir / "PG_VERSION").exists():
                await asyncio.to_thread(self._initdb)
            self._write_settings()
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.touch()
            self._chown_to_postgres(self.log_path)
            result = await asyncio.to_thread(
                self._run,
                "pg_ctl",
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(int(timeout)),
                timeout=timeout + 10,
            )
            if result.returncode != 0:
                raise StackError(
                    f"pg_ctl start failed (exit {result.returncode}): {result.stdout}{result.stderr}\n"
                    f"last log lines ({self.log_path}):\n{procs.tail(self.log_path)}"
                )
            started = True
        await self._ensure_app_role(timeout)
        return started

    def stop(self, *, timeout: float = 60.0) -> None:
        """``pg_ctl stop -m fast``; a server that ignores it is killed."""
        if not (self.data_dir / "PG_VERSION").exists():
            return
        pid = self.postmaster_pid()
        result = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(timeout)))
        if result.returncode != 0 and pid is not None and self.running():
            log.warning("pg_ctl stop failed (%s); killing postmaster %s", result.stderr.strip(), pid)
            with contextlib.suppress(psutil.Error):
                procs.kill(psutil.Process(pid), group=False)

    # -- SQL ------------------------------------------------------------------------------

    async def _superuser_connect(self, database: str = "postgres") -> asyncpg.Connection:
        password = self._superuser_password_file.read_text().strip()
        return await asyncpg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=password, database=database, timeout=10
        )

    async def _ensure_app_role(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = await self._superuser_connect()
                break
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                # "the database system is starting up" right after pg_ctl returns on a slow box.
                if time.monotonic() > deadline:
                    raise StackError(
                        f"PostgreSQL on 127.0.0.1:{self.port} refuses connections: {exc!r}\n"
                        f"last log lines ({self.log_path}):\n{procs.tail(self.log_path)}"
                    ) from exc
                await asyncio.sleep(0.2)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE)
            if not exists:
                # Two sessions may race here; the loser finds the role made.
                with contextlib.suppress(asyncpg.DuplicateObjectError):
                    await conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN CREATEDB PASSWORD '{APP_PASSWORD}'")
            # Statement statistics for the app role too (runbook, benchmark); the extension lives in
            # the maintenance database and sees every database's statements.
            with contextlib.suppress(asyncpg.PostgresError):
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                await conn.execute(f"GRANT pg_read_all_stats TO {APP_ROLE}")
                await conn.execute(f"GRANT EXECUTE ON FUNCTION pg_stat_statements_reset TO {APP_ROLE}")
        finally:
            await conn.close()

    async def create_database(self, name: str) -> str:
        """Create database ``name`` owned by the app role unless it exists; returns its URL."""
        if not _DB_NAME.match(name):
            raise ValueError(f"invalid database name {name!r} (lowercase letters, digits, underscores)")
        conn = await self._superuser_connect()
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await conn.execute(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
        finally:
            await conn.close()
        return self.url(name)

    async def list_databases(self) -> list[str]:
        conn = await self._superuser_connect()
        try:
            rows = await conn.fetch("SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname")
        finally:
            await conn.close()
        return [row["datname"] for row in rows]
