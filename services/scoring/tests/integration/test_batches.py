"""Batches of enriched leads, activities and touches, each handled in one transaction, write what the same
events handled one by one write, in a few statements per batch (counted on the transaction's connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow_contracts import Event, decode
from leadflow_kit.clock import FrozenClock
from leadflow_kit.db import driver_connection
from leadflow_kit.migrations import upgrade
from leadflow_kit.uow import UnitOfWork, unit_of_work
from leadflow_scoring import handlers
from leadflow_scoring.bootstrap import Deps, bootstrap
from leadflow_scoring.seed import install_initial_model
from leadflow_stack.testing import counting_statements

from .conftest import MIGRATIONS, activity, enriched, good_fit, scoring_settings, touched

pytestmark = pytest.mark.integration

LEADS = 64
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
Handler = Callable[[list[Event[Any]], UnitOfWork[Deps]], Awaitable[None]]


@asynccontextmanager
async def scoring_deps(infra: Any) -> AsyncIterator[Deps]:
    database_url = await infra.new_database("scoring")
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    settings = scoring_settings(database_url, infra.bootstrap_servers, infra.new_topic_prefix("scoring"))
    deps = bootstrap(settings, FrozenClock(NOW))
    try:
        await install_initial_model(settings, deps.platform.db, deps.store, NOW)
        yield deps
    finally:
        await deps.platform.db.dispose()


async def handle(deps: Deps, handler: Handler, events: list[Event[Any]]) -> int:
    """Handle ``events`` as one batch in one transaction; returns how many statements the handler ran."""
    async with unit_of_work(deps.platform, deps) as uow:
        with counting_statements(await driver_connection(uow.session)) as statements:
            await handler(events, uow)
    return len(statements)


async def stored(deps: Deps) -> dict[str, Any]:
    """Everything the events left: scores, their history, activities, identities and the published events."""
    async with deps.platform.db.transaction() as session:
        conn = await driver_connection(session)
        scores = await conn.fetch("SELECT * FROM lead_score ORDER BY lead_id")
        changes = await conn.fetch(
            "SELECT lead_id, at, trigger, cause, score, previous_score, fit_grade, engagement_level, tier, is_mql,"
            " model_id, breakdown, lifecycle_stage, previous_stage FROM score_change ORDER BY id")
        activities = await conn.fetch("SELECT * FROM activity ORDER BY activity_id")
        identities = await conn.fetch("SELECT kind, value, lead_id FROM lead_identity ORDER BY kind, value")
        outbox = await conn.fetch("SELECT key, headers, body FROM outbox ORDER BY id")
    published = []
    for row in outbox:
        event = decode(row["body"].encode(), [(name, value.encode()) for name, value in row["headers"]])
        published.append((row["key"], event.correlation_id, event.data.model_dump(mode="json")))
    return {"scores": [dict(r) for r in scores], "changes": [dict(r) for r in changes],
            "activities": [dict(r) for r in activities], "identities": [dict(r) for r in identities],
            "published": published}


def story() -> list[tuple[Handler, list[Event[Any]]]]:
    """64 leads: some did something before their fill (by visitor id, by email), four fill a form twice within
    the batch (the second asks for a demo), activities come after (one twice), then sales touch some."""
    at = NOW - timedelta(hours=1)
    lead_ids = [f"lead-{n:02d}" for n in range(LEADS)]
    before = [activity("pricing_page_view", at=at - timedelta(days=1), visitor_id="visitor-03"),
              activity("webinar_attended", at=at - timedelta(days=2), email="lead-05@acme.example")]
    fills = [enriched(lead_id, at=at, form_key="newsletter", visitor_id=f"visitor-{n:02d}",
                      **(good_fit() if n % 2 else {"industry": "Retail"}))
             for n, lead_id in enumerate(lead_ids)]
    repeats = [enriched(lead_ids[n], at=at, form_key="demo", captured_lead_id=f"{lead_ids[n]}-again", **good_fit())
               for n in (1, 2, 3, 40)]
    filled = [*fills[:10], repeats[0], *fills[10:30], repeats[1], repeats[2], *fills[30:], repeats[3]]
    after = [activity("pricing_page_view", at=at + timedelta(minutes=n), lead_id=lead_ids[n], activity_id=f"act-{n}")
             for n in range(0, LEADS, 3)]
    after += [activity("demo_requested", at=at, visitor_id="visitor-07"), after[0]]
    touches = [touched(lead_ids[n], "accepted", at=NOW) for n in range(0, LEADS, 4)]
    touches += [touched(f"{lead_ids[1]}-again", "meeting_booked", at=NOW), touched("lead-never-seen", "accepted",
                                                                                   at=NOW)]
    return [(handlers.record_activities, before), (handlers.score_leads, filled),
            (handlers.record_activities, after), (handlers.record_touches, touches)]


async def test_batches_of_events_write_what_one_by_one_writes_in_a_few_statements(infra: Any) -> None:
    batches = story()
    async with scoring_deps(infra) as alone, scoring_deps(infra) as together:
        one_by_one: list[list[int]] = []
        batched: list[int] = []
        for handler, events in batches:
            one_by_one.append([await handle(alone, handler, [event]) for event in events])
            batched.append(await handle(together, handler, events))
        assert await stored(together) == await stored(alone)
        state = await stored(together)

    assert len(state["scores"]) == LEADS
    assert {row["lifecycle_stage"] for row in state["scores"]} >= {"lead", "mql", "sal", "sql"}
    # Before the batch statements each event ran its own: 442 for these 112 events (273 for the 68 fills).
    assert sum(one_by_one[1]) == 4 * len(one_by_one[1]) + 1, one_by_one[1]
    # Per batch: the locks, what the events bring, the leads read, the scores written; the first batch's
    # activities wait for their leads, so nothing is read. The fills' batch reads the active model's version
    # too: its first use in a process, cached from then on.
    assert batched == [2, 5, 4, 4], batched
    # One by one, an event runs what it ran before: 442 statements in all.
    assert sum(map(sum, one_by_one)) == 442, one_by_one
