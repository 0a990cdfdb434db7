"""pytest fixtures that give integration and e2e tests a real Kafka broker and PostgreSQL.

Registered from the repo-root ``conftest.py``::

    pytest_plugins = ["leadflow_stack.pytest_plugin"]

The ``infra`` fixture starts both servers once per test session, on free ports, in a fresh
directory under ``/tmp/leadflow-infra-<uid>/`` (not pytest's tmp dir: the ``postgres`` OS user
must be able to reach it), and stops them at session end. If they cannot start, every test
that asks for ``infra`` errors with the log tail; nothing is ever skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
import pytest_asyncio

from leadflow_stack import procs
from leadflow_stack.errors import StackError
from leadflow_stack.kafka import SASL_PASSWORD, SASL_USERNAME
from leadflow_stack.services import ServiceConfig
from leadflow_stack.stack import Stack

log = logging.getLogger(__name__)

_OWNER_FILE = "owner.json"


def infra_base_dir() -> Path:
    override = os.environ.get("LEADFLOW_TEST_INFRA_DIR")
    return Path(override) if override else Path(tempfile.gettempdir()) / f"leadflow-infra-{os.getuid()}"


def reap_abandoned_sessions(base: Path) -> None:
    """Stop the processes and remove the directory of sessions whose pytest has died.

    A session killed hard (SIGKILL, OOM) cannot clean up after itself; its Kafka and services
    die with it (PDEATHSIG), but PostgreSQL is daemonized by pg_ctl and would linger.
    """
    if not base.exists():
        return
    for session_dir in base.iterdir():
        if not session_dir.is_dir():
            continue
        owner = procs.read_pidfile(session_dir / _OWNER_FILE)
        if owner is None:
            # Another session may have just made its directory and not yet claimed it.
            if time.time() - session_dir.stat().st_mtime < 300:
                continue
        elif owner.alive():
            continue
        strays = procs.marked_processes(session_dir)
        if strays:
            log.warning("stopping %d process(es) left by abandoned test session %s", len(strays), session_dir)
            procs.terminate(strays, timeout=10, group=False)
        shutil.rmtree(session_dir, ignore_errors=True)


class Infra:
    """Kafka + PostgreSQL for one test session, and helpers to carve isolated pieces out of them.

    Isolation is by name, never by truncation: each test module takes a fresh database
    (:meth:`new_database`) and a fresh topic prefix (:meth:`new_topic_prefix`).
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def start(cls, base: Path | None = None) -> Infra:
        base = base or infra_base_dir()
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)
        await asyncio.to_thread(reap_abandoned_sessions, base)
        root = Path(tempfile.mkdtemp(prefix="session-", dir=base))
        owner = procs.PidRecord.of(os.getpid())
        procs.write_pidfile(root / _OWNER_FILE, owner)
        infra = cls(Stack.for_tests(root))
        infra._start_watchdog(owner)
        try:
            await infra.stack.start_infra()
        except BaseException:
            await infra.close(keep_logs=True)
            raise
        return infra

    def _start_watchdog(self, owner: procs.PidRecord) -> None:
        log_path = self.stack.log_dir / "watchdog.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            self._watchdog = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "leadflow_stack.watchdog",
                    str(owner.pid),
                    str(owner.started),
                    str(self.stack.root),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def close(self, *, keep_logs: bool = True) -> None:
        """Stop everything; remove the data, keep the logs until the next session reaps them."""
        if self._watchdog is not None:
            self._watchdog.terminate()
            await asyncio.to_thread(self._watchdog.wait)
            self._watchdog = None
        await self.stack.down()
        for sub in ("kafka", "postgres"):
            shutil.rmtree(self.stack.root / sub, ignore_errors=True)
        if not keep_logs:
            shutil.rmtree(self.stack.root, ignore_errors=True)

    # -- Kafka ----------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return self.stack.bootstrap_servers

    @property
    def sasl_bootstrap_servers(self) -> str:
        """The same broker's SASL_PLAINTEXT listener (user ``SASL_USERNAME``, see :meth:`sasl_env`)."""
        return self.stack.kafka.sasl_bootstrap_servers

    def sasl_env(
        self, mechanism: str = "SCRAM-SHA-256", *, password: str = SASL_PASSWORD, tls: bool = False
    ) -> dict[str, str]:
        """``start_service`` overrides that connect a service through the SASL_PLAINTEXT listener, or
        with ``tls`` the SASL_SSL one (trusting the broker's own CA)."""
        kafka = self.stack.kafka
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.sasl_ssl_bootstrap_servers if tls else kafka.sasl_bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL" if tls else "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": SASL_USERNAME,
            "KAFKA_SASL_PASSWORD": password,
        }
        if tls:
            env["KAFKA_SSL_CAFILE"] = str(kafka.tls.ca_file)
        return env

    @staticmethod
    def new_topic_prefix(label: str = "t") -> str:
        """A unique prefix such as ``t-3f9a2b1c.``; topics become ``t-3f9a2b1c.leads.captured``."""
        return f"{_slug(label, '-')}-{uuid.uuid4().hex[:8]}."

    async def create_topics(self, prefix: str, partitions: int = 3) -> list[str]:
        """Create every LeadFlow topic (with the ``.dlq`` ones) under ``prefix``; returns the names."""
        return await self.stack.create_topics(prefix, partitions=partitions)

    async def create_topic(self, name: str, partitions: int = 3) -> None:
        await self.stack.kafka.create_topics([name], partitions=partitions)

    async def stop_kafka(self) -> None:
        """Stop the broker gracefully; topics, data and ports are kept for :meth:`start_kafka`."""
        await asyncio.to_thread(self.stack.kafka.stop)

    async def start_kafka(self) -> None:
        """Start the broker again on the same port and data dir; returns once it serves metadata."""
        await self.stack.kafka.start()

    # -- PostgreSQL -----------------------------------------------------------------------

    @property
    def postgres_port(self) -> int:
        return self.stack.postgres.port

    async def new_database(self, prefix: str = "test") -> str:
        """Create a fresh, empty database named ``<prefix>_<random>``; returns its
        ``postgresql+asyncpg://`` URL (role leadflow/leadflow)."""
        name = f"{_slug(prefix, '_')[:40]}_{uuid.uuid4().hex[:10]}"
        return await self.stack.postgres.create_database(name)

    async def stop_postgres(self) -> None:
        """Stop PostgreSQL (``pg_ctl stop -m fast``: every session is cut off, as in a restart or a
        failover); data and port are kept for :meth:`start_postgres`."""
        await asyncio.to_thread(self.stack.postgres.stop)

    async def start_postgres(self) -> None:
        """Start PostgreSQL again on the same port and data; returns once it takes connections."""
        await self.stack.postgres.start()

    @staticmethod
    def asyncpg_dsn(url: str) -> str:
        """The same database as a plain ``postgresql://`` DSN for ``asyncpg.connect``."""
        return url.replace("postgresql+asyncpg://", "postgresql://", 1)

    # -- services -------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.stack.log_dir

    async def start_service(
        self,
        name: str,
        env_overrides: Mapping[str, str] | None = None,
        *,
        topic_prefix: str = "",
        database_url: str | None = None,
        port: int | None = None,
        migrate: bool = True,
        seed_demo: bool = False,
        timeout: float = 60.0,
    ) -> ServiceConfig:
        """Run ``python -m leadflow_<name>`` against this infra and wait for ``/readyz``.

        Without ``database_url`` the service gets a fresh database. ``env_overrides`` names
        settings without the service prefix (``{"CONSUMER_MAX_ATTEMPTS": "2"}``). The returned
        config has ``.url``. Logs: ``infra.log_dir / f"{name}.log"``.
        """
        config = ServiceConfig(
            name=name,
            port=port or procs.free_port(),
            database_url=database_url or await self.new_database(name),
            bootstrap_servers=self.bootstrap_servers,
            topic_prefix=topic_prefix,
            env_overrides=dict(env_overrides or {}),
        )
        await self.stack.services.start(config, migrate=migrate, seed_demo=seed_demo, timeout=timeout)
        return config

    async def stop_service(self, name: str) -> None:
        """SIGTERM (graceful), SIGKILL if it does not exit in time."""
        await asyncio.to_thread(self.stack.services.stop, name)

    async def kill_service(self, name: str) -> None:
        """SIGKILL, as a crash would."""
        await asyncio.to_thread(self.stack.services.kill, name)

    def freeze_service(self, name: str) -> None:
        """SIGSTOP: the process runs nothing, yet its sockets stay open, as in a hung process."""
        self._signal_service(name, signal.SIGSTOP)

    def thaw_service(self, name: str) -> None:
        """SIGCONT after :meth:`freeze_service`."""
        self._signal_service(name, signal.SIGCONT)

    def _signal_service(self, name: str, signum: signal.Signals) -> None:
        record = self.stack.services.running(name)
        if record is None:
            raise StackError(f"service {name} is not running")
        os.kill(record.pid, signum)

    async def restart_service(self, name: str, timeout: float = 60.0) -> None:
        """Start a stopped or killed service again with its previous port, database and env."""
        await self.stack.services.restart(name, timeout=timeout)

    def service_url(self, name: str) -> str:
        config = self.stack.services.config(name)
        if config is None:
            raise StackError(f"service {name} was never started in this session")
        return config.url


def _slug(text: str, sep: str) -> str:
    return re.sub(r"[^a-z0-9]+", sep, text.lower()).strip(sep) or "x"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def infra() -> AsyncIterator[Infra]:
    """Kafka and PostgreSQL for the whole session (see :class:`Infra`)."""
    try:
        started = await Infra.start()
    except StackError as exc:
        pytest.fail(f"test infrastructure could not start:\n{exc}", pytrace=False)
    try:
        yield started
    finally:
        await started.close()
