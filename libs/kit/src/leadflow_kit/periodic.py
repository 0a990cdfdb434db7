"""The one periodic loop every service uses for work done on a timer (sweeps, schedulers, gauges)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from leadflow_kit.failures import is_infrastructure_error
from leadflow_kit.platform import Background

log = logging.getLogger(__name__)


def periodic(
    name: str,
    interval_seconds: float | Callable[[], float],
    work: Callable[[], Awaitable[object]],
    *,
    wait_first: bool = False,
) -> Background:
    """Run ``work`` every ``interval_seconds`` until cancelled. A failed round is logged and tried again
    next round: an outage (the database restarting) with one line, anything else with its traceback.
    ``wait_first`` waits one interval before the first round (for work that has nothing to do at start)."""

    async def run() -> None:
        await run_periodically(name, interval_seconds, work, wait_first=wait_first)

    return Background(name, run)


async def run_periodically(
    name: str,
    interval_seconds: float | Callable[[], float],
    work: Callable[[], Awaitable[object]],
    *,
    wait_first: bool = False,
    stopping: asyncio.Event | None = None,
) -> None:
    """``periodic``'s loop, for a caller that stops it by setting ``stopping`` rather than cancelling it."""
    stopping = stopping or asyncio.Event()

    def interval() -> float:
        return interval_seconds() if callable(interval_seconds) else interval_seconds

    if wait_first and await _stopped_within(stopping, interval()):
        return
    while not stopping.is_set():
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed (%s: %s); will try again", name, type(exc).__name__, exc,
                        exc_info=not is_infrastructure_error(exc))
        if await _stopped_within(stopping, interval()):
            return


async def _stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    return stopping.is_set()
