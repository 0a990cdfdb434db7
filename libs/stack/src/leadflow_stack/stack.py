"""The whole local stack (Kafka, PostgreSQL, the five services and the console) under one root directory.

Layout of ``root``::

    stack.json          ports and options, so later up/down/status calls agree
    kafka/              server.properties, cluster.id, kafka.pid, data/ (test stacks: tls/, the SASL_SSL
                        listener's CA and keystore)
    postgres/           owned by the postgres user when run as root; data/ is PGDATA
    run/                <service>.pid and <service>.json (the exact start config)
    console/            the console's service API keys, cookie secret and first admin's password (0600)
    logs/               kafka.log, postgres.log, <service>.log, <service>.migrate.log, ...
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psutil

from leadflow_contracts.topics import all_topics, topic_config
from leadflow_stack import procs
from leadflow_stack.console import CONSOLE, ConsoleSecrets, console_secrets
from leadflow_stack.errors import StackError
from leadflow_stack.kafka import KafkaBroker
from leadflow_stack.paths import repo_root
from leadflow_stack.postgres import PostgresCluster
from leadflow_stack.services import (
    DEFAULT_SERVICE_PORTS,
    DEV_ADMIN_API_KEY,
    SERVICE_NAMES,
    SERVICE_NICENESS,
    ServiceConfig,
    ServiceSupervisor,
    service_available,
)
from leadflow_stack.user_settings import ENV_FILE_NAME, merge_user_settings, port_of, read_env_file, unknown_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackConfig:
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    # SASL_PLAINTEXT and SASL_SSL listeners besides the PLAINTEXT one (test stacks; see KafkaBroker).
    kafka_sasl_port: int | None = None
    kafka_sasl_ssl_port: int | None = None
    postgres_port: int = 15432
    service_ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_SERVICE_PORTS))
    admin_api_key: str = DEV_ADMIN_API_KEY
    topic_prefix: str = ""
    partitions: int = 3
    # fsync and friends; only a throwaway test cluster turns them off.
    durable: bool = True
    # Children get SIGKILL when the starting process dies (test sessions, never `make up`).
    die_with_parent: bool = False
    # Services off the hand-off path yield the CPU to it (services.SERVICE_NICENESS). Test stacks do not:
    # their tests wait on sla as much as on the others, on a machine full of test processes.
    yield_cpu: bool = True

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "service_ports": dict(self.service_ports)}, indent=2)

    @classmethod
    def from_json(cls, raw: str) -> StackConfig:
        return cls(**json.loads(raw))


@dataclass
class ServiceState:
    name: str
    status: str  # running | ready | stopped | unavailable
    url: str | None = None


@dataclass
class StackStatus:
    root: Path
    kafka: str
    postgres: str
    bootstrap_servers: str
    postgres_port: int
    admin_api_key: str
    services: list[ServiceState] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    databases: dict[str, str] = field(default_factory=dict)
    # The console's first admin: its password and the file that keeps it (after `up` started the console).
    console_sign_in: tuple[str, Path] | None = None


def service_database(name: str) -> str:
    return f"leadflow_{name}"


class Stack:
    """``env_file`` and ``environ`` are the user's settings for the services (leadflow_stack.user_settings);
    without them a service gets only the stack's own values."""

    def __init__(
        self,
        root: Path,
        config: StackConfig | None = None,
        *,
        env_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.config = config or StackConfig()
        self.env_file = env_file
        self.environ: Mapping[str, str] = environ or {}
        self.log_dir = self.root / "logs"
        self.kafka = KafkaBroker(
            self.root / "kafka",
            port=self.config.kafka_port,
            controller_port=self.config.kafka_controller_port,
            log_path=self.log_dir / "kafka.log",
            marker_root=self.root,
            die_with_parent=self.config.die_with_parent,
            sasl_port=self.config.kafka_sasl_port,
            sasl_ssl_port=self.config.kafka_sasl_ssl_port,
        )
        self.postgres = PostgresCluster(
            self.root / "postgres",
            port=self.config.postgres_port,
            log_path=self.log_dir / "postgres.log",
            marker_root=self.root,
            durable=self.config.durable,
        )
        self.services = ServiceSupervisor(
            self.root / "run",
            self.log_dir,
            self.root,
            die_with_parent=self.config.die_with_parent,
            niceness=SERVICE_NICENESS if self.config.yield_cpu else {},
        )

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path,
        default: StackConfig | None = None,
        *,
        env_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Stack:
        """The stack at ``root`` with the config it was started with (or ``default``)."""
        config_file = root / "stack.json"
        config = default
        if config_file.exists():
            try:
                config = StackConfig.from_json(config_file.read_text())
            except (ValueError, TypeError) as exc:
                raise StackError(f"unreadable {config_file}: {exc}; remove it after `down`") from exc
        return cls(root, config, env_file=env_file, environ=environ)

    @classmethod
    def dev(cls, root: Path | None = None, *, env_file: Path | None = None) -> Stack:
        """The developer stack behind `make up`: ``<repo>/.stack`` on the documented ports, its services
        configured by ``<repo>/leadflow.env`` and the environment."""
        return cls.open(
            root or repo_root() / ".stack",
            env_file=env_file or repo_root() / ENV_FILE_NAME,
            environ=os.environ,
        )

    @classmethod
    def for_tests(cls, root: Path) -> Stack:
        """A throwaway stack on free ports: non-durable PostgreSQL, children die with us."""
        kafka_port, controller_port, sasl_port, sasl_ssl_port, pg_port = procs.free_ports(5)
        return cls(
            root,
            StackConfig(
                kafka_port=kafka_port,
                kafka_controller_port=controller_port,
                kafka_sasl_port=sasl_port,
                kafka_sasl_ssl_port=sasl_ssl_port,
                postgres_port=pg_port,
                service_ports={},
                durable=False,
                die_with_parent=True,
                yield_cpu=False,
            ),
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    # -- lifecycle ------------------------------------------------------------------------

    def _save_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # The postgres OS user must be able to traverse into root/postgres.
        self.root.chmod(0o755)
        (self.root / "stack.json").write_text(self.config.to_json())

    async def start_infra(self) -> None:
        """Kafka and PostgreSQL, started side by side; running ones are kept."""
        self._save_config()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        results = await asyncio.gather(self.kafka.start(), self.postgres.start(), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise StackError("\n\n".join(str(e) for e in errors))

    async def create_topics(self, prefix: str | None = None, *, partitions: int | None = None) -> list[str]:
        prefix = self.config.topic_prefix if prefix is None else prefix
        names = all_topics(prefix)
        await self.kafka.create_topics(names, partitions=partitions or self.config.partitions,
                                       configs={name: topic_config(name, prefix) for name in names})
        return names

    def service_config(self, name: str) -> ServiceConfig:
        user_settings = merge_user_settings(name, file_values=read_env_file(self.env_file), environ=self.environ)
        return ServiceConfig(
            name=name,
            # A stack.json written before the console existed has no port for it.
            port=port_of(name, user_settings, self.config.service_ports.get(name, DEFAULT_SERVICE_PORTS[name])),
            database_url=self.postgres.url(service_database(name)),
            bootstrap_servers=self.bootstrap_servers,
            topic_prefix=self.config.topic_prefix,
            admin_api_key=self.config.admin_api_key,
            env_overrides=user_settings,
        )

    def warn_unknown_settings(self, services: list[str]) -> None:
        """Name every setting given in the file or environment that no service reads (a typo)."""
        given = [*read_env_file(self.env_file), *self.environ]
        for name in unknown_names(given, services):
            log.warning("%s is not a setting of any LeadFlow service; ignored", name)

    async def start_console(self) -> ConsoleSecrets:
        """Mint (or reuse) the console's keys on the five running services, then start the console (the
        five services' URLs and its keys on them, then the user's ``CONSOLE_`` settings) and create its
        first admin."""
        urls = {name: (self.services.config(name) or self.service_config(name)).url for name in SERVICE_NAMES}
        secrets = await console_secrets(self.root / CONSOLE, urls, self.config.admin_api_key)
        await self.postgres.create_database(service_database(CONSOLE))
        base = self.service_config(CONSOLE)
        await self.services.start(replace(base, env_overrides={**secrets.env(urls), **base.env_overrides}),
                                  seed_demo=True)
        return secrets

    async def up(self, *, with_services: bool = True) -> StackStatus:
        """Bring everything up; parts already running are detected and kept."""
        await self.start_infra()
        await self.create_topics()
        skipped: list[str] = []
        startable: list[str] = []
        if with_services:
            for name in SERVICE_NAMES:
                if service_available(name):
                    startable.append(name)
                else:
                    log.warning("service %s skipped: module leadflow_%s.__main__ is not importable yet", name, name)
                    skipped.append(name)
        self.warn_unknown_settings([*startable, *([CONSOLE] if service_available(CONSOLE) else [])])
        # Every service's database exists from the first `up`, even for services not written yet.
        for name in SERVICE_NAMES:
            await self.postgres.create_database(service_database(name))
        results = await asyncio.gather(
            *(self.services.start(self.service_config(name), seed_demo=True) for name in startable),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise StackError("\n\n".join(str(e) for e in errors))
        secrets: ConsoleSecrets | None = None
        if with_services and not skipped and service_available(CONSOLE):
            secrets = await self.start_console()
        status = await self.status()
        status.skipped = skipped
        if secrets is not None:
            status.console_sign_in = (secrets.admin_password, secrets.admin_password_file)
        return status

    async def down(self) -> list[str]:
        """Stop services, Kafka and PostgreSQL; returns descriptions of strays that had to be
        killed afterwards (empty when everything stopped by the book)."""
        await asyncio.to_thread(self.services.stop_all)
        await asyncio.gather(asyncio.to_thread(self.kafka.stop), asyncio.to_thread(self.postgres.stop))
        return await asyncio.to_thread(self.reap_strays)

    def reap_strays(self) -> list[str]:
        strays = procs.marked_processes(self.root)
        described = []
        for proc in strays:
            try:
                described.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:160]}")
            except psutil.Error:
                described.append(f"pid {proc.pid}")
        if strays:
            log.warning("stopping %d stray process(es) of %s", len(strays), self.root)
            procs.terminate(strays, timeout=10, group=False)
        return described

    def leftover_processes(self) -> list[psutil.Process]:
        """Processes started by this stack that are still alive (empty after a clean down)."""
        return procs.marked_processes(self.root)

    async def status(self) -> StackStatus:
        kafka_state = "running" if self.kafka.running() is not None else "stopped"
        pg_running = await asyncio.to_thread(self.postgres.running) if self.root.exists() else False
        states: list[ServiceState] = []
        wanted = set(self.services.known_services()) | set(self.config.service_ports)
        ordered = [n for n in SERVICE_NAMES if n in wanted] + sorted(wanted - set(SERVICE_NAMES))
        for name in ordered:
            config = self.services.config(name)
            # Where it runs, else where `up` would start it (a PORT the user set included).
            url = config.url if config else self.service_config(name).url
            if self.services.running(name) is None:
                state = "stopped" if service_available(name) else "unavailable"
            else:
                state = "ready" if await self.services.ready(name) else "running"
            states.append(ServiceState(name=name, status=state, url=url))
        return StackStatus(
            root=self.root,
            kafka=kafka_state,
            postgres="running" if pg_running else "stopped",
            bootstrap_servers=self.bootstrap_servers,
            postgres_port=self.config.postgres_port,
            admin_api_key=self.config.admin_api_key,
            services=states,
            databases={
                s.name: self.postgres.url(service_database(s.name)) for s in states if s.status in ("ready", "running")
            },
        )
