"""Open-loop and saturating load schedules.

Open loop: request ``i`` is due at ``start + i / rate`` whatever happened to the earlier ones,
so a slow server meets more concurrent requests instead of fewer (no coordinated omission);
latency is measured from the moment a request was *due*, not from when it was sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

Fire = Callable[[int, float], Coroutine[Any, Any, None]]  # (sequence number, due time as epoch seconds)


@dataclass
class ScheduleResult:
    offered: int
    started_at: float
    ended_at: float  # when the last request was issued
    finished_at: float  # when the last request completed
    max_inflight: int
    max_behind_s: float  # how late the generator itself ever issued a request
    shed: int  # requests not issued because max_inflight was reached (generator saturated)


async def open_loop(rate: float, duration: float, fire: Fire, *, max_inflight: int = 2000) -> ScheduleResult:
    total = max(1, round(rate * duration))
    loop = asyncio.get_running_loop()
    inflight: set[asyncio.Task[None]] = set()
    peak = 0
    behind = 0.0
    shed = 0
    start_mono = loop.time()
    start_wall = time.time()
    for i in range(total):
        due = start_mono + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind = max(behind, -delay)
        if len(inflight) >= max_inflight:
            shed += 1
            continue
        task = asyncio.create_task(fire(i, start_wall + i / rate))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        peak = max(peak, len(inflight))
    ended = time.time()
    if inflight:
        await asyncio.gather(*inflight, return_exceptions=True)
    return ScheduleResult(total, start_wall, ended, time.time(), peak, behind, shed)


async def saturate(concurrency: int, duration: float, fire: Fire) -> ScheduleResult:
    """As fast as the system answers: ``concurrency`` requests always outstanding for ``duration``."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + duration
    start_wall = time.time()
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while loop.time() < stop_at:
            i = counter
            counter += 1
            await fire(i, time.time())

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    end = time.time()
    return ScheduleResult(counter, start_wall, end, end, concurrency, 0.0, 0)
