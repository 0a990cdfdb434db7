"""CPU and memory of every process taking part, sampled with psutil while a step runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

log = logging.getLogger(__name__)


@dataclass
class Usage:
    cpu_seconds: float = 0.0
    rss_max_bytes: int = 0
    by_kind: dict[str, float] = field(default_factory=dict)  # CPU seconds by what a member process does

    def as_dict(self, wall: float) -> dict[str, Any]:
        found: dict[str, Any] = {
            "cpu_cores": round(self.cpu_seconds / wall, 3) if wall > 0 else 0.0,
            "cpu_seconds": round(self.cpu_seconds, 2),
            "rss_max_mb": round(self.rss_max_bytes / 2**20, 1),
        }
        if self.by_kind:
            found["cpu_seconds_by_kind"] = {
                kind: round(seconds, 2) for kind, seconds in sorted(self.by_kind.items(), key=lambda kv: -kv[1])
            }
        return found


# What a process of a group does (a group given one reports its CPU broken down by it).
Kind = Callable[[psutil.Process], str]


def postgres_process_kind(title: str, databases: Mapping[str, str]) -> str:
    """What a PostgreSQL server process does, by its title: a client backend by the service whose database
    it serves (each service has its own), an autovacuum worker as such, any other auxiliary process by its
    name ('walwriter', 'checkpointer', ...), and the postmaster. Where PostgreSQL's CPU a lead goes: a
    service's statements, or the vacuums, WAL and checkpoints its writes cost later."""
    if not title.startswith("postgres: "):
        return "postmaster"
    words = title.removeprefix("postgres: ").split()
    if words[:2] == ["autovacuum", "worker"]:
        return "autovacuum"
    if len(words) >= 3 and (words[2] == "[local]" or "(" in words[2]):  # user, database, client address
        return f"backend {databases.get(words[1], 'other')}"  # other: the bench's own connections
    return " ".join(words) or "postmaster"


def postgres_kind(databases: Mapping[str, str]) -> Kind:
    def kind(proc: psutil.Process) -> str:
        return postgres_process_kind(" ".join(proc.cmdline()), databases)

    return kind


@dataclass
class _Group:
    root: psutil.Process
    with_children: bool
    kind: Kind | None = None
    last: dict[int, float] = field(default_factory=dict)
    kinds: dict[int, str] = field(default_factory=dict)  # a pid's kind, read once

    def kind_of(self, proc: psutil.Process) -> str:
        """``proc``'s kind, read once a pid (a process's title may change, what it does does not)."""
        assert self.kind is not None
        found = self.kinds.get(proc.pid)
        if found is None:
            try:
                found = self.kinds[proc.pid] = self.kind(proc)
            except psutil.Error:
                found = "gone"
        return found

    def members(self) -> list[psutil.Process]:
        found = [self.root]
        if self.with_children:
            with contextlib.suppress(psutil.Error):
                found += self.root.children(recursive=True)
        return found


class ResourceMonitor:
    """Samples named process groups (a PostgreSQL postmaster counts with its backends)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._groups: dict[str, _Group] = {}
        self._usage: dict[str, Usage] = {}
        self._task: asyncio.Task[None] | None = None
        self._started = 0.0
        self._machine_at_start = 0.0

    def add(self, name: str, pid: int, *, with_children: bool = False, kind: Kind | None = None) -> None:
        with contextlib.suppress(psutil.Error):
            self._groups[name] = _Group(psutil.Process(pid), with_children, kind)

    def _sample(self) -> None:
        for name, group in self._groups.items():
            usage = self._usage.setdefault(name, Usage())
            rss = 0
            for proc in group.members():
                try:
                    with proc.oneshot():
                        times = proc.cpu_times()
                        cpu = times.user + times.system
                        rss += proc.memory_info().rss
                except psutil.Error:
                    continue
                previous = group.last.get(proc.pid)
                if previous is not None:
                    spent = max(cpu - previous, 0.0)
                    usage.cpu_seconds += spent
                    if group.kind is not None and spent:
                        kind = group.kind_of(proc)
                        usage.by_kind[kind] = usage.by_kind.get(kind, 0.0) + spent
                group.last[proc.pid] = cpu
            usage.rss_max_bytes = max(usage.rss_max_bytes, rss)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sample()

    @staticmethod
    def _machine_busy() -> float:
        times = psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    def start(self) -> None:
        """Begin a measurement window (a step): counters restart from now."""
        self._machine_at_start = self._machine_busy()
        self._usage = {}
        for group in self._groups.values():
            group.last, group.kinds = {}, {}
        self._sample()
        self._usage = {}
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, dict[str, Any]]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()
        wall = time.monotonic() - self._started
        found = {name: usage.as_dict(wall) for name, usage in sorted(self._usage.items())}
        # The machine is shared: what everything else used in the same window shows the noise.
        machine = self._machine_busy() - self._machine_at_start
        ours = sum(u.cpu_seconds for u in self._usage.values())
        found["_machine"] = {"cpu_cores": round(machine / wall, 3), "cpu_seconds": round(machine, 2),
                             "rss_max_mb": round(psutil.virtual_memory().used / 2**20, 1)}
        found["_others"] = {"cpu_cores": round(max(machine - ours, 0.0) / wall, 3),
                            "cpu_seconds": round(max(machine - ours, 0.0), 2), "rss_max_mb": 0.0}
        return found


class DbWaitSampler:
    """What each service's PostgreSQL connections are doing, sampled from pg_stat_activity.

    A service short of CPU shows connections 'idle in transaction' (the database waits for the
    service); a serialized hot row shows them waiting on 'Lock'; commits show as 'IO/WALSync'.
    """

    def __init__(self, dsn: str, databases: dict[str, str], interval: float = 0.25) -> None:
        self.dsn = dsn
        self.databases = databases  # database -> service
        self.interval = interval
        self._counts: dict[str, dict[str, int]] = {}
        self._samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT datname, state, wait_event_type, wait_event FROM pg_stat_activity "
                    "WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid()",
                    list(self.databases),
                )
                self._samples += 1
                for row in rows:
                    state = row["state"] or "?"
                    if state == "active" and row["wait_event_type"]:
                        state = f"active:{row['wait_event_type']}:{row['wait_event']}"
                    per = self._counts.setdefault(self.databases[row["datname"]], {})
                    per[state] = per.get(state, 0) + 1
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def start(self) -> None:
        self._counts, self._samples = {}, 0
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, dict[str, float]]:
        """Per service: the average number of connections in each state (idle ones left out)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        samples = max(self._samples, 1)
        return {
            service: {state: round(n / samples, 2) for state, n in sorted(states.items()) if state != "idle"}
            for service, states in sorted(self._counts.items())
        }


class StatementCounter:
    """How many SQL statements each service ran in a step, from pg_stat_statements: the database
    round trips a lead costs, the figure CPU per lead follows most closely."""

    def __init__(self, dsn: str, databases: dict[str, str]) -> None:
        self.dsn = dsn
        self.databases = databases  # database -> service
        self.available = True

    async def _connect(self) -> Any:
        import asyncpg

        return await asyncpg.connect(self.dsn, timeout=10)

    async def reset(self) -> None:
        if not self.available:
            return
        conn = await self._connect()
        try:
            await conn.execute("SELECT pg_stat_statements_reset()")
        except Exception as exc:  # a cluster started without the library preloaded
            log.warning("pg_stat_statements unavailable, no statement counts: %s", exc)
            self.available = False
        finally:
            await conn.close()

    async def read(self, top: int = 6) -> dict[str, Any] | None:
        """Per service: statements run (BEGIN/COMMIT included) and the most frequent ones."""
        if not self.available:
            return None
        conn = await self._connect()
        try:
            rows = await conn.fetch(
                "SELECT d.datname, s.calls, s.total_exec_time, s.query FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = ANY($1::text[])",
                list(self.databases),
            )
        finally:
            await conn.close()
        found: dict[str, Any] = {}
        for row in sorted(rows, key=lambda r: -r["calls"]):
            service = self.databases[row["datname"]]
            per = found.setdefault(service, {"calls": 0, "exec_ms": 0.0, "top": []})
            per["calls"] += row["calls"]
            per["exec_ms"] = round(per["exec_ms"] + row["total_exec_time"], 1)
            if len(per["top"]) < top:
                per["top"].append({"calls": row["calls"], "exec_ms": round(row["total_exec_time"], 1),
                                   "query": " ".join(row["query"].split())[:160]})
            per.setdefault("_all", []).append(row)
        for per in found.values():
            # Every statement, for working out a lead's round trips from the JSON (the report prints the top).
            per["all"] = [{"calls": r["calls"], "exec_ms": round(r["total_exec_time"], 1),
                           "query": " ".join(r["query"].split())[:400]} for r in per["_all"]]
            # The statements the database spent most time on: where its CPU per lead goes.
            slowest = sorted(per.pop("_all"), key=lambda r: -r["total_exec_time"])[:top]
            per["most_time"] = [{"calls": r["calls"], "exec_ms": round(r["total_exec_time"], 1),
                                 "query": " ".join(r["query"].split())[:160]} for r in slowest]
        return dict(sorted(found.items()))
