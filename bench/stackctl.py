"""The benchmark's pipeline: the five services, configured for load, on Kafka and PostgreSQL.

Kafka and PostgreSQL: those of `make up` when it runs (the same broker the developer uses),
else a private pair started for the run (durable, like `make up`) and stopped after.
The services are always the benchmark's own processes on free ports, with their own databases
and topic prefix, because a benchmark needs settings a developer's stack must not have: the
per-IP and per-form rate limits lifted for 127.0.0.1, and routing's webhook subscription
pointed at the benchmark's receiver. A running `make up` stack is left untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from leadflow_stack import procs
from leadflow_stack.services import (
    DEV_ADMIN_API_KEY,
    SERVICE_NAMES,
    ServiceConfig,
    ServiceSupervisor,
    service_available,
)
from leadflow_stack.stack import Stack, StackConfig

log = logging.getLogger(__name__)


@dataclass
class BenchStack:
    workdir: Path
    run_id: str
    partitions: int = 3
    infra: Stack | None = None
    private_infra: bool = False
    supervisor: ServiceSupervisor | None = None
    configs: dict[str, ServiceConfig] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)

    @property
    def topic_prefix(self) -> str:
        return f"bench-{self.run_id}."

    @property
    def bootstrap_servers(self) -> str:
        assert self.infra is not None
        return self.infra.bootstrap_servers

    async def start_infra(self) -> str:
        """Kafka and PostgreSQL; returns where they came from."""
        dev = Stack.dev()
        if dev.kafka.running() is not None and await asyncio.to_thread(dev.postgres.running):
            self.infra = dev
            self.partitions = dev.config.partitions
            return f"the running `make up` stack ({dev.root})"
        kafka_port, controller_port, pg_port = procs.free_ports(3)
        root = self.workdir / "infra"
        self.infra = Stack(
            root,
            StackConfig(kafka_port=kafka_port, kafka_controller_port=controller_port, postgres_port=pg_port,
                        service_ports={}, durable=True, die_with_parent=True),
        )
        self.private_infra = True
        await self.infra.start_infra()
        return f"a private Kafka + PostgreSQL for this run ({root})"

    async def create_topics(self, names: list[str]) -> None:
        assert self.infra is not None
        await self.infra.kafka.create_topics(names, partitions=self.partitions)
        self.topics += names

    async def create_pipeline_topics(self) -> None:
        assert self.infra is not None
        self.topics += await self.infra.create_topics(self.topic_prefix, partitions=self.partitions)

    async def create_database(self, name: str) -> str:
        """A database of the benchmark's own (the durable floor's), dropped with the run; its asyncpg DSN."""
        assert self.infra is not None
        await self.infra.postgres.create_database(name)
        self.databases.append(name)
        return self.infra.postgres.dsn(name)

    def service_dsns(self) -> dict[str, str]:
        """service -> the asyncpg DSN of its database."""
        assert self.infra is not None
        return {name: self.infra.postgres.dsn(f"bench_{self.run_id}_{name}") for name in self.configs}

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    async def start_services(self, webhook_url: str, webhook_secret: str,
                             settings: dict[str, dict[str, str]] | None = None) -> list[str]:
        """Start every service that exists yet; returns those missing (not importable)."""
        assert self.infra is not None
        self.supervisor = ServiceSupervisor(
            self.workdir / "run", self.workdir / "logs", self.workdir, die_with_parent=True
        )
        overrides: dict[str, dict[str, str]] = {
            "capture": {
                # Every bench request comes from 127.0.0.1; the limits would turn the run into a 429 test.
                "RATE_LIMIT_EXEMPT_IPS": json.dumps(["127.0.0.1"]),
                "RATE_LIMIT_FORM_PER_MINUTE": "0",
                # Activities go to the last 1000 leads; the first seconds of a run have only a few.
                "RATE_LIMIT_ACTIVITY_LEAD_PER_MINUTE": "0",
            },
            # Every lead to sales at its first fill: the bench follows each lead to its CRM webhook.
            "routing": {"DEMO_WEBHOOK_URL": webhook_url, "DEMO_WEBHOOK_SECRET": webhook_secret,
                        "DEMO_HANDOFF": "first_fill"},
        }
        for name, given in (settings or {}).items():
            overrides[name] = {**overrides.get(name, {}), **given}
        present = [name for name in SERVICE_NAMES if service_available(name)]
        ports = procs.free_ports(len(present))
        for name, port in zip(present, ports, strict=True):
            database = f"bench_{self.run_id}_{name}"
            url = await self.infra.postgres.create_database(database)
            self.databases.append(database)
            self.configs[name] = ServiceConfig(
                name=name,
                port=port,
                database_url=url,
                bootstrap_servers=self.bootstrap_servers,
                topic_prefix=self.topic_prefix,
                admin_api_key=DEV_ADMIN_API_KEY,
                env_overrides=overrides.get(name, {}),
            )
        supervisor = self.supervisor
        await asyncio.gather(
            *(supervisor.start(config, seed_demo=True, timeout=120) for config in self.configs.values())
        )
        return [name for name in SERVICE_NAMES if name not in present]

    def service_pids(self) -> dict[str, int]:
        found: dict[str, int] = {}
        if self.supervisor is None:
            return found
        for name in self.configs:
            record = self.supervisor.running(name)
            if record is not None:
                found[name] = record.pid
        return found

    def infra_pids(self) -> dict[str, int]:
        assert self.infra is not None
        found: dict[str, int] = {}
        kafka = self.infra.kafka.running()
        if kafka is not None:
            found["kafka"] = kafka.pid
        postmaster = self.infra.postgres.postmaster_pid()
        if postmaster is not None:
            found["postgres"] = postmaster
        return found

    def database_of_service(self) -> dict[str, str]:
        return {f"bench_{self.run_id}_{name}": name for name in self.configs}

    def admin_dsn(self) -> str:
        assert self.infra is not None
        return self.infra.postgres.dsn("postgres")

    def url(self, name: str) -> str:
        return self.configs[name].url

    async def close(self) -> None:
        if self.supervisor is not None:
            await asyncio.to_thread(self.supervisor.stop_all)
        if self.infra is None:
            return
        if self.private_infra:
            await self.infra.down()
            for sub in ("kafka", "postgres"):
                shutil.rmtree(self.infra.root / sub, ignore_errors=True)
            return
        # On the shared `make up` infra: leave nothing of ours behind.
        await self._drop_topics()
        await self._drop_databases()

    async def _drop_topics(self) -> None:
        if not self.topics:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=10000)
        try:
            await admin.start()
            await admin.delete_topics(self.topics)
        except Exception as exc:
            log.warning("could not delete the benchmark's topics: %s", exc)
        finally:
            await admin.close()

    async def _drop_databases(self) -> None:
        assert self.infra is not None
        if not self.databases:
            return
        dsn = self.infra.postgres.dsn("postgres")
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
        except Exception as exc:
            log.warning("could not drop the benchmark's databases: %s", exc)
            return
        try:
            for database in self.databases:
                with contextlib.suppress(asyncpg.PostgresError):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()
