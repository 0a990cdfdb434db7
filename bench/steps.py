"""One load step: drive, let the pipeline drain, summarize."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.analysis import ObservationTail, Submission, summarize_step
from bench.floor import FloorSource
from bench.resources import DbWaitSampler, ResourceMonitor, StatementCounter
from bench.schedule import open_loop, saturate

MIN_LEADS_PER_STEP = 2000  # enough for a p99 that is not the one worst lead
# From this rate on, a step lasts LONG_STEP_SECONDS: the "sustained for 60 s" target counts only a step that
# long, and the rate it reports is the best one kept. With only the 400 leads/s step that long, every run below
# it reported the 25 leads/s step (80 s for its 2,000 leads) as the best rate kept, whatever 100 and 200 did.
LONG_STEP_RATE = 100.0
LONG_STEP_SECONDS = 60.0
GENERATOR_NICENESS = 10


@dataclass(frozen=True)
class Step:
    name: str
    rate: float | None  # None: saturate with ``concurrency`` requests outstanding
    duration: float
    concurrency: int = 64


def step_duration(rate: float, duration: float, *, min_leads: int = MIN_LEADS_PER_STEP,
                  long_rate: float = LONG_STEP_RATE, long_seconds: float = LONG_STEP_SECONDS) -> float:
    """A fixed-rate step lasts ``duration``, but long enough for ``min_leads`` leads, and at least
    ``long_seconds`` from ``long_rate`` on (0 switches either rule off, for a quick look)."""
    seconds = max(duration, min_leads / rate if rate > 0 else 0.0)
    if long_seconds and rate >= long_rate:
        seconds = max(seconds, long_seconds)
    return seconds


@contextlib.contextmanager
def low_priority(niceness: int = GENERATOR_NICENESS) -> Iterator[None]:
    """The load generator (this thread, the event loop's) yields the CPU to the system it measures
    while a step runs; its priority comes back afterwards, so the processes it starts later (py-spy,
    the next floor's relays) do not inherit it. Lowering a priority again needs root: without it, the
    generator stays low."""
    thread = threading.get_native_id()  # Linux: a priority belongs to a thread
    before = os.getpriority(os.PRIO_PROCESS, thread)
    os.setpriority(os.PRIO_PROCESS, thread, max(before, niceness))
    try:
        yield
    finally:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, thread, before)


@dataclass
class CollectorPauses:
    """The driver's own garbage collections while a step's requests went out: a collection stops the
    event loop, and with it the open-loop schedule, so requests due meanwhile go out late and together."""
    collections: int = 0
    full: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    _began: float = field(default=0.0, init=False, repr=False)  # the running collection's start

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = time.perf_counter() - self._began
        self.collections += 1
        self.full += info["generation"] == 2
        self.total_s += took
        self.max_s = max(self.max_s, took)

    def as_dict(self) -> dict[str, float | int]:
        return {"collections": self.collections, "full": self.full,
                "total_ms": round(self.total_s * 1000, 1), "max_ms": round(self.max_s * 1000, 1)}


@contextlib.contextmanager
def held_objects_frozen() -> Iterator[None]:
    """What the driver holds from earlier steps, frozen for this one: a full collection walks every object in
    the process, and the observations of a run's leads (some twenty objects a lead, over a million by the
    'max' step) made one take a tenth of a second on an idle core, more on the full box. Frozen, a collection
    walks only what the step made; the earlier objects are collected again afterwards. Entered before the
    step's CPU is counted, so the collection that makes the freeze worth it is not charged to the generator."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def collector_watched() -> Iterator[CollectorPauses]:
    """Times the driver's collections while the step's requests go out."""
    pauses = CollectorPauses()
    gc.callbacks.append(pauses)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(pauses)


class Load(Protocol):
    async def fire(self, i: int, due: float) -> None: ...

    def take(self) -> list[Submission]: ...


class FloorLoad:
    def __init__(self, source: FloorSource) -> None:
        self.source = source
        self.submissions: list[Submission] = []

    async def fire(self, _i: int, due: float) -> None:
        lead_id = str(uuid.uuid4())
        sent = time.time()
        try:
            await self.source.send(lead_id)
            self.submissions.append(Submission(lead_id, due, time.time(), 200, sent=sent))
        except Exception as exc:
            self.submissions.append(Submission(None, due, time.time(), 0, error=type(exc).__name__))

    def take(self) -> list[Submission]:
        taken, self.submissions = self.submissions, []
        return taken


def sustained(summary: dict[str, Any], drain_end: str, open_leads: int) -> bool:
    """Whether a step's load was carried: capture took it at the offered pace, the latency did not grow
    within the step, the drain ended, and (nearly) every lead came through."""
    trend = summary["end_latency_trend_ms"]
    growing = trend["last_third_p50"] > 2 * trend["first_third_p50"] + 100
    rate = summary["offered_rate"]
    # Capture answering late also queues: all accepted, but over a longer time than the step's.
    paced = rate is None or summary["achieved_capture_rate"] >= 0.9 * rate
    return (
        drain_end != "timeout"
        and not growing
        and paced
        and summary["accepted"] >= 0.95 * summary["offered"]
        and open_leads <= 0.01 * max(summary["distinct_leads"], 1)
    )


async def run_step(
    step: Step,
    load: Load,
    tail: ObservationTail,
    monitor: ResourceMonitor,
    stages: tuple[str, ...],
    *,
    end_stage: str = "routed",
    with_webhooks: bool,
    drain_timeout: float,
    quiet_timeout: float = 5.0,
    db_waits: DbWaitSampler | None = None,
    statements: StatementCounter | None = None,
) -> dict[str, Any]:
    if statements is not None:
        await statements.reset()
    with held_objects_frozen():
        monitor.start()
        if db_waits is not None:
            db_waits.start()
        with low_priority(), collector_watched() as pauses:
            if step.rate is not None:
                schedule = await open_loop(step.rate, step.duration, load.fire)
            else:
                schedule = await saturate(step.concurrency, step.duration, load.fire)
    submissions = load.take()
    # A repeat fill's lead id never travels on its own (enrichment merges it into the first fill's lead).
    wanted = {s.lead_id for s in submissions if s.ok and s.kind == "lead" and s.lead_id}

    def pending() -> int:
        obs = tail.poll()
        return sum(
            1 for lead in wanted
            if not obs.reached(lead, end_stage) or (with_webhooks and lead not in obs.webhooks)
        )

    drain_started = time.monotonic()
    last_progress, last_pending = drain_started, pending()
    drain_end = "complete"
    while last_pending:
        await asyncio.sleep(0.2)
        now_pending = pending()
        now = time.monotonic()
        if now_pending < last_pending:
            last_progress, last_pending = now, now_pending
        if now - last_progress > quiet_timeout:
            drain_end = "stuck"  # nothing moved: these leads will not come (or something broke)
            break
        if now - drain_started > drain_timeout:
            drain_end = "timeout"  # still moving: a backlog the pipeline could not absorb
            break
    drained_in = time.monotonic() - drain_started
    resources = await monitor.stop()
    waits = await db_waits.stop() if db_waits is not None else None
    statement_counts = await statements.read() if statements is not None else None
    summary = summarize_step(
        # Until the last answer: capture's acceptance rate, not the generator's issuing rate.
        step.name, step.rate, submissions, (schedule.started_at, schedule.finished_at), tail.obs, stages,
        end_stage=end_stage, with_webhooks=with_webhooks,
    )
    summary["schedule"] = {
        "max_inflight": schedule.max_inflight,
        "generator_max_behind_ms": round(schedule.max_behind_s * 1000, 1),
        "shed_by_generator": schedule.shed,
        "driver_gc": pauses.as_dict(),
        "concurrency": None if step.rate is not None else step.concurrency,
    }
    summary["drain_s"] = round(drained_in, 2)
    summary["not_completed"] = last_pending
    summary["drain_end"] = drain_end
    summary["sustained"] = sustained(summary, drain_end, last_pending)
    leads = max(summary["distinct_leads"], 1)
    for usage in resources.values():
        # CPU per lead: what each process spends to carry one lead (activities included).
        usage["cpu_ms_per_lead"] = round(usage["cpu_seconds"] * 1000 / leads, 2)
        if "cpu_seconds_by_kind" in usage:
            usage["cpu_ms_per_lead_by_kind"] = {
                kind: round(seconds * 1000 / leads, 2) for kind, seconds in usage["cpu_seconds_by_kind"].items()
            }
    summary["resources"] = resources
    if waits is not None:
        summary["db_connections"] = waits
    if statement_counts is not None:
        for counts in statement_counts.values():
            counts["per_lead"] = round(counts["calls"] / leads, 1)
        summary["db_statements"] = statement_counts
    return summary
