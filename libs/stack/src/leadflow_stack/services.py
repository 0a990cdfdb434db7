"""Run LeadFlow services as separate processes: ``python -m leadflow_<name> serve|migrate|seed-demo``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

from leadflow_stack import procs
from leadflow_stack.errors import StackError
from leadflow_stack.paths import repo_root

log = logging.getLogger(__name__)

SERVICE_NAMES: tuple[str, ...] = ("capture", "enrichment", "scoring", "routing", "sla")
DEFAULT_SERVICE_PORTS: Mapping[str, int] = {
    "capture": 8001,
    "enrichment": 8002,
    "scoring": 8003,
    "routing": 8004,
    "sla": 8005,
    # The web console (leadflow_console), started after the five: it calls them.
    "console": 8000,
}
# Services that yield the CPU on a machine they share with the hand-off path (capture, enrichment,
# scoring, routing, and the PostgreSQL and Kafka they wait on). sla keeps the funnel, the timeline, the
# reports and the SLA clocks: none of it is on a lead's way to its rep, and its clocks run on the events'
# own times, so a backlog there delays a figure or a notice, not a hand-off. At equal shares a full machine
# starved routing, the busiest single process on the path, and the queue formed in front of it
# (docs/performance.md, session 16).
SERVICE_NICENESS: Mapping[str, int] = {"sla": 10}
DEV_ADMIN_API_KEY = "dev-admin-key"
# The only non-public addresses the local stack's webhooks may reach: its own receivers on loopback.
LOCAL_RECEIVER_NETWORKS = "127.0.0.0/8,::1/128"


def service_module(name: str) -> str:
    return f"leadflow_{name}"


def service_available(name: str) -> bool:
    """True when ``python -m leadflow_<name>`` can run (the package has a ``__main__``)."""
    try:
        return importlib.util.find_spec(f"{service_module(name)}.__main__") is not None
    except ModuleNotFoundError:
        return False


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one service process is started with; kept so that restart() is exact."""

    name: str
    port: int
    database_url: str
    bootstrap_servers: str
    topic_prefix: str = ""
    admin_api_key: str = DEV_ADMIN_API_KEY
    env_overrides: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env_prefix(self) -> str:
        return f"{self.name.upper()}_"

    def env(self, marker_root: Path) -> dict[str, str]:
        prefix = self.env_prefix
        # Settings inherited from the caller's shell must not leak into an isolated test service.
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
        env.update(
            {
                procs.MARKER_ENV: str(marker_root.resolve()),
                "PYTHONUNBUFFERED": "1",
                f"{prefix}DATABASE_URL": self.database_url,
                f"{prefix}KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                f"{prefix}PORT": str(self.port),
                f"{prefix}HOST": "127.0.0.1",
                f"{prefix}ADMIN_API_KEY": self.admin_api_key,
                f"{prefix}ENVIRONMENT": "development",
                f"{prefix}TOPIC_PREFIX": self.topic_prefix,
                # Webhook receivers of the local stack (demo CRM, tests, bench) listen on loopback, over
                # plain http; services that send no webhooks ignore these.
                f"{prefix}WEBHOOK_ALLOW_HTTP": "true",
                f"{prefix}WEBHOOK_ALLOWED_NETWORKS": LOCAL_RECEIVER_NETWORKS,
            }
        )
        for key, value in self.env_overrides.items():
            # Overrides name settings without the prefix ("TOPIC_PREFIX"); full names pass as given.
            env[key if key.startswith(prefix) else f"{prefix}{key}"] = value
        return env

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "env_overrides": dict(self.env_overrides)})

    @classmethod
    def from_json(cls, raw: str) -> ServiceConfig:
        return cls(**json.loads(raw))


class ServiceSupervisor:
    """Starts, watches and stops service processes; pid and config files live in ``run_dir``,
    one log file per process in ``log_dir``."""

    def __init__(
        self, run_dir: Path, log_dir: Path, marker_root: Path, *, die_with_parent: bool = False,
        niceness: Mapping[str, int] = SERVICE_NICENESS,
    ) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.marker_root = marker_root
        self.die_with_parent = die_with_parent
        self.niceness = niceness
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- files ----------------------------------------------------------------------------

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _configfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def log_path(self, name: str, command: str = "serve") -> Path:
        return self.log_dir / (f"{name}.log" if command == "serve" else f"{name}.{command}.log")

    def config(self, name: str) -> ServiceConfig | None:
        try:
            return ServiceConfig.from_json(self._configfile(name).read_text())
        except (OSError, ValueError, TypeError):
            return None

    def known_services(self) -> list[str]:
        return sorted(p.stem for p in self.run_dir.glob("*.json")) if self.run_dir.exists() else []

    # -- state ----------------------------------------------------------------------------

    def running(self, name: str) -> procs.PidRecord | None:
        record = procs.read_pidfile(self._pidfile(name))
        if record is None:
            return None
        proc = record.process()
        if proc is None:
            return None
        try:
            if service_module(name) not in " ".join(proc.cmdline()):
                return None
        except psutil.Error:
            return None
        return record

    async def ready(self, name: str) -> bool:
        config = self.config(name)
        if config is None or self.running(name) is None:
            return False
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                return (await client.get(f"{config.url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    # -- lifecycle ------------------------------------------------------------------------

    def _cwd(self) -> Path:
        try:
            return repo_root()
        except StackError:
            return self.run_dir

    async def run_command(self, config: ServiceConfig, command: str, *, timeout: float = 120.0) -> None:
        """Run a one-shot subcommand (``migrate``, ``seed-demo``) to completion, output to its log."""
        log_path = self.log_path(config.name, command)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            log_file.write(f"\n===== {command} at {time.ctime()} =====\n".encode())
            log_file.flush()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                service_module(config.name),
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=config.env(self.marker_root),
                cwd=self._cwd(),
                start_new_session=True,
            )
            try:
                code = await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise StackError(
                    f"{config.name} {command} did not finish within {timeout:.0f}s; log {log_path}:\n"
                    f"{procs.tail(log_path)}"
                ) from None
        if code != 0:
            raise StackError(f"{config.name} {command} failed (exit {code}); log {log_path}:\n{procs.tail(log_path)}")

    async def start(
        self,
        config: ServiceConfig,
        *,
        migrate: bool = True,
        seed_demo: bool = False,
        timeout: float = 60.0,
    ) -> bool:
        """Migrate, start ``serve``, wait for ``/readyz`` 200, then seed demo data if asked.

        A service already running with the same config is kept (returns False). One running
        with a different config is an error: stop it first.
        """
        name = config.name
        if self.running(name) is not None:
            if self.config(name) != config:
                raise StackError(
                    f"service {name} already runs with another configuration (leadflow.env or the environment "
                    "changed?); stop it first (make down)"
                )
            await self.wait_ready(name, timeout=timeout)
            if seed_demo:
                await self.run_command(config, "seed-demo")
            return False
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # It holds the settings the user gave, secrets among them.
        self._configfile(name).touch()
        self._configfile(name).chmod(0o600)
        self._configfile(name).write_text(config.to_json())
        if migrate:
            await self.run_command(config, "migrate")
        self._spawn(config)
        await self.wait_ready(name, timeout=timeout)
        if seed_demo:
            await self.run_command(config, "seed-demo")
        return True

    def _spawn(self, config: ServiceConfig) -> None:
        log_path = self.log_path(config.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_file:
            log_file.write(f"\n===== serve on {config.url} at {time.ctime()} =====\n".encode())
            log_file.flush()
            popen = subprocess.Popen(
                [sys.executable, "-m", service_module(config.name), "serve"],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=config.env(self.marker_root),
                cwd=self._cwd(),
                start_new_session=True,
                preexec_fn=self._preexec(config.name),
            )
        self._children[config.name] = popen
        procs.write_pidfile(self._pidfile(config.name), procs.PidRecord.of(popen.pid))

    def _preexec(self, name: str) -> Callable[[], None] | None:
        """What the child runs before ``serve``: its priority (``niceness``), and dying with us."""
        steps = [procs.yield_cpu(niceness)] if (niceness := self.niceness.get(name, 0)) else []
        if self.die_with_parent:
            steps.append(procs.die_with_parent)
        if not steps:
            return None

        def preexec() -> None:
            for step in steps:
                step()

        return preexec

    async def wait_ready(self, name: str, *, timeout: float = 60.0) -> None:
        config = self.config(name)
        if config is None:
            raise StackError(f"service {name} was never started")
        log_path = self.log_path(name)
        deadline = time.monotonic() + timeout
        last: str = "no answer"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.running(name) is None:
                    self._reap(name)
                    raise StackError(f"service {name} exited during startup; log {log_path}:\n{procs.tail(log_path)}")
                try:
                    response = await client.get(f"{config.url}/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                await asyncio.sleep(0.1)
        raise StackError(
            f"service {name} not ready at {config.url}/readyz after {timeout:.0f}s (last: {last}); "
            f"log {log_path}:\n{procs.tail(log_path)}"
        )

    def _reap(self, name: str) -> None:
        child = self._children.pop(name, None)
        if child is not None:
            child.poll()

    def stop(self, name: str, *, timeout: float = 15.0) -> None:
        """SIGTERM (graceful shutdown), SIGKILL after ``timeout`` seconds."""
        record = self.running(name)
        if record is not None:
            proc = record.process()
            if proc is not None:
                log.info("stopping %s (pid %s)", name, proc.pid)
                procs.terminate([proc], timeout=timeout)
        self._reap(name)
        self._pidfile(name).unlink(missing_ok=True)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash would: no graceful shutdown, nothing flushed."""
        record = self.running(name)
        if record is None:
            raise StackError(f"service {name} is not running")
        proc = record.process()
        if proc is not None:
            log.info("killing %s (pid %s)", name, proc.pid)
            procs.kill(proc)
        self._reap(name)
        self._pidfile(name).unlink(missing_ok=True)

    async def restart(self, name: str, *, timeout: float = 60.0) -> None:
        """Stop if running, then start again with exactly the previous config (no migrate)."""
        config = self.config(name)
        if config is None:
            raise StackError(f"service {name} was never started")
        await asyncio.to_thread(self.stop, name)
        self._spawn(config)
        await self.wait_ready(name, timeout=timeout)

    def stop_all(self, *, timeout: float = 15.0) -> None:
        names = self.known_services()
        live: list[psutil.Process] = []
        for name in names:
            record = self.running(name)
            proc = record.process() if record is not None else None
            if proc is not None:
                live.append(proc)
        # Stop them together: each may need seconds to drain, and none depends on another.
        procs.terminate(live, timeout=timeout)
        for name in names:
            self._reap(name)
            self._pidfile(name).unlink(missing_ok=True)
