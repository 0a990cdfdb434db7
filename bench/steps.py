"""One load step: drive, let the pipeline drain, summarize."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from bench.analysis import ObservationTail, Submission, summarize_step
from bench.floor import FloorSource
from bench.resources import DbWaitSampler, ResourceMonitor, StatementCounter
from bench.schedule import open_loop, saturate


@dataclass(frozen=True)
class Step:
    name: str
    rate: float | None  # None: saturate with ``concurrency`` requests outstanding
    duration: float
    concurrency: int = 64


class Load(Protocol):
    async def fire(self, i: int, due: float) -> None: ...

    def take(self) -> list[Submission]: ...


class FloorLoad:
    def __init__(self, source: FloorSource) -> None:
        self.source = source
        self.submissions: list[Submission] = []

    async def fire(self, _i: int, due: float) -> None:
        lead_id = str(uuid.uuid4())
        try:
            await self.source.send(lead_id)
            self.submissions.append(Submission(lead_id, due, time.time(), 200))
        except Exception as exc:
            self.submissions.append(Submission(None, due, time.time(), 0, error=type(exc).__name__))

    def take(self) -> list[Submission]:
        taken, self.submissions = self.submissions, []
        return taken


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
    monitor.start()
    if db_waits is not None:
        db_waits.start()
    if step.rate is not None:
        schedule = await open_loop(step.rate, step.duration, load.fire)
    else:
        schedule = await saturate(step.concurrency, step.duration, load.fire)
    submissions = load.take()
    wanted = {s.lead_id for s in submissions if s.ok and s.kind != "activity" and s.lead_id}

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
        "concurrency": None if step.rate is not None else step.concurrency,
    }
    summary["drain_s"] = round(drained_in, 2)
    summary["not_completed"] = last_pending
    summary["drain_end"] = drain_end
    trend = summary["end_latency_trend_ms"]
    growing = trend["last_third_p50"] > 2 * trend["first_third_p50"] + 100
    summary["sustained"] = (
        drain_end != "timeout"
        and not growing
        and summary["accepted"] >= 0.95 * summary["offered"]
        and last_pending <= 0.01 * max(summary["distinct_leads"], 1)
    )
    leads = max(summary["distinct_leads"], 1)
    for usage in resources.values():
        # CPU per lead: what each process spends to carry one lead (activities included).
        usage["cpu_ms_per_lead"] = round(usage["cpu_seconds"] * 1000 / leads, 2)
    summary["resources"] = resources
    if waits is not None:
        summary["db_connections"] = waits
    if statement_counts is not None:
        for counts in statement_counts.values():
            counts["per_lead"] = round(counts["calls"] / leads, 1)
        summary["db_statements"] = statement_counts
    return summary
