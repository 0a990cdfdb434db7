"""The parked-lead drainer: routes the scored leads a batch parked because another transaction held
their team's or rep's row past the grace (``handlers.claim_for_scored``), in the order they arrived,
once those rows are free.

One drainer works at a time across replicas (``RoutingStore.take_parked_turn``). A round takes the
oldest parked leads in one transaction; if that fails it goes one lead at a time, and a lead that
fails alone ``consumer_max_attempts`` times is dead-lettered to ``leads.scored.dlq`` like any event
its consumer gives up on. While the database is out the round waits for it: nothing parked is lost,
the rows stay until the transaction that routes them deletes them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from leadflow_contracts import encode_body, encode_headers, topics
from leadflow_kit.consumer import DeadLetter, dead_letter
from leadflow_kit.failures import is_outage
from leadflow_kit.platform import Background
from leadflow_kit.uow import unit_of_work
from leadflow_routing import handlers
from leadflow_routing.bootstrap import Deps
from leadflow_routing.store import ParkedRow

log = logging.getLogger(__name__)


def parked_lead_drainer(deps: Deps) -> Background:
    """The drainer, beside routing's consumer: it looks at once when this process parks a lead, every
    ``parked_drain_interval_seconds`` while leads are parked, else every ``parked_idle_interval_seconds``
    (another replica may park some)."""

    async def run() -> None:
        settings = deps.settings
        counted = True  # leads may have been parked before this process started: count them first
        while True:
            deps.parked_waiting.clear()
            try:
                done = await drain_once(deps)
                if done.routed or done.still_parked or counted:
                    counted = await _count(deps) > 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("routing parked leads failed (%s: %s); will try again", type(exc).__name__, exc,
                            exc_info=not await is_outage(exc, deps.platform.db))
                done = handlers.ParkedRound(0, 1)
            if done.full and done.routed:
                continue
            waiting = done.still_parked or done.busy
            interval = settings.parked_drain_interval_seconds if waiting else settings.parked_idle_interval_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(deps.parked_waiting.wait(), interval)

    return Background("parked-lead-drainer", run)


async def drain_once(deps: Deps) -> handlers.ParkedRound:
    """One round: the oldest parked leads together, or one by one if that fails."""
    platform, settings = deps.platform, deps.settings
    try:
        async with unit_of_work(platform, deps) as uow:
            done = await handlers.route_parked_leads(uow, settings.parked_batch_size)
    except Exception as exc:
        if await is_outage(exc, platform.db):
            raise
        log.info("routing parked leads together failed (%s: %s); one by one", type(exc).__name__, exc)
        done = await _one_by_one(deps)
    return done


async def _one_by_one(deps: Deps) -> handlers.ParkedRound:
    """Each of the oldest parked leads in its own transaction, in order; a lead that fails, or still
    waits, holds back its later events."""
    platform, store = deps.platform, deps.store
    async with unit_of_work(platform, deps) as uow:
        rows = await store.oldest_parked(uow.session, deps.settings.parked_batch_size)
    held_back: set[str] = set()
    routed = left = 0
    for row in rows:
        lead_id = row.event.data.lead_id
        if lead_id in held_back:
            left += 1
            continue
        try:
            async with unit_of_work(platform, deps) as uow:
                done = await handlers.route_parked_lead(uow, row.seq)
        except Exception as exc:
            if await is_outage(exc, platform.db):
                raise
            held_back.add(lead_id)
            left += 1
            await _failed(deps, row, exc)
            continue
        if done.busy:
            return handlers.ParkedRound(routed, left + 1, busy=True)
        routed += done.routed
        if done.still_parked:
            held_back.add(lead_id)
            left += 1
    return handlers.ParkedRound(routed, left)


async def _failed(deps: Deps, row: ParkedRow, error: Exception) -> None:
    """Count a parked lead's failed attempt; at the consumer's limit it goes to the dead-letter topic."""
    platform = deps.platform
    log.warning("routing parked lead %s failed (attempt %d): %s", row.event.data.lead_id, row.attempts + 1, error)
    async with unit_of_work(platform, deps) as uow:
        attempts = await deps.store.record_parked_failure(uow.session, row.seq, f"{type(error).__name__}: {error}")
        if attempts < platform.settings.consumer_max_attempts:
            return
        event = row.event
        topic = platform.settings.topic(topics.SCORED)
        letter = DeadLetter(topic, None, None, event.subject.encode(), encode_body(event), encode_headers(event))
        await dead_letter(platform, letter, error, attempts)
        await deps.store.unpark(uow.session, [row.seq])


async def _count(deps: Deps) -> int:
    """Set the parked-lead gauges; returns how many are parked."""
    async with unit_of_work(deps.platform, deps) as uow:
        count, oldest = await deps.store.parked_backlog(uow.session, uow.now())
    deps.metrics.parked_leads.set(count)
    deps.metrics.parked_oldest_age.set(oldest)
    return count
