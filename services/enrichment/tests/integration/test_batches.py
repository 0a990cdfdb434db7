"""A batch of captured fills, handled in one transaction, writes what the same fills handled one by one write,
in a few statements for the whole batch (counted on the transaction's connection)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow_contracts import Event, LeadCaptured, LeadContact, decode, new_event
from leadflow_enrichment.bootstrap import Deps, bootstrap
from leadflow_enrichment.handlers import enrich_captured_leads
from leadflow_kit.clock import FrozenClock
from leadflow_kit.db import driver_connection
from leadflow_kit.uow import unit_of_work
from leadflow_stack.testing import counting_statements

from .conftest import enrichment_settings, new_env

pytestmark = pytest.mark.integration

LEADS = 64
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
COMPANIES = ("acme.com", "globex.com", "initech.de", "hooli.io", "gmail.com", "example.org")


def fill(n: int, email: str | None = None, **contact: Any) -> Event[LeadCaptured]:
    lead_id = str(uuid.uuid4())
    submitted = NOW - timedelta(seconds=LEADS - n)
    data = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=submitted,
                        contact=LeadContact(email=email or f"person{n}@{COMPANIES[n % len(COMPANIES)]}",
                                            first_name=f"Person{n}", **contact),
                        custom_fields={"n": str(n)})
    return new_event(data, source="capture", subject=lead_id, lead_captured_at=submitted)


def fills() -> list[Event[LeadCaptured]]:
    """64 people; three of them fill a form again within the batch (one adds a phone, one a company name
    the directory knows), and one fill is published twice under two event ids."""
    people = [fill(n) for n in range(LEADS)]
    again = [fill(LEADS, email="PERSON1@globex.com", phone="+1 757 864 1000"),
             fill(LEADS + 1, email="person7@globex.com", company="Initech"),
             fill(LEADS + 2, email="person1@globex.com", job_title="VP Sales")]
    republished = people[5].model_copy(update={"id": str(uuid.uuid4())})
    return [*people[:10], again[0], *people[10:30], again[1], republished, *people[30:], again[2]]


@asynccontextmanager
async def enrichment_deps(infra: Any) -> AsyncIterator[Deps]:
    deps = bootstrap(enrichment_settings(await new_env(infra)), FrozenClock(NOW))
    try:
        yield deps
    finally:
        await deps.platform.db.dispose()
        await deps.platform.pipeline_db.dispose()


async def handle(deps: Deps, events: list[Event[LeadCaptured]]) -> int:
    """Handle ``events`` as one batch in one transaction; returns how many statements the handler ran."""
    async with unit_of_work(deps.platform, deps) as uow:
        with counting_statements(await driver_connection(uow.session)) as statements:
            await enrich_captured_leads(events, uow)
    return len(statements)


async def stored(deps: Deps) -> dict[str, Any]:
    """Everything the fills left: leads, fills and the published events (by captured lead id)."""
    async with deps.platform.db.transaction() as session:
        conn = await driver_connection(session)
        leads = await conn.fetch(
            "SELECT id, email, form_key, original, profile, account, quality, partial, partial_reasons, custom_fields,"
            " fill_count, first_submitted_at, last_submitted_at, updated_at FROM lead ORDER BY id")
        lead_fills = await conn.fetch("SELECT * FROM lead_fill ORDER BY captured_lead_id")
        outbox = await conn.fetch("SELECT key, headers, body FROM outbox ORDER BY id")
    published = []
    for row in outbox:
        event = decode(row["body"].encode(), [(name, value.encode()) for name, value in row["headers"]])
        published.append((row["key"], event.data.model_dump(mode="json")))
    return {"leads": [dict(r) for r in leads], "fills": [dict(r) for r in lead_fills], "published": published}


async def test_a_batch_of_fills_writes_what_one_by_one_writes_in_a_few_statements(infra: Any) -> None:
    events = fills()
    async with enrichment_deps(infra) as alone, enrichment_deps(infra) as together:
        one_by_one = [await handle(alone, [event]) for event in events]
        batched = await handle(together, events)
        assert await stored(together) == await stored(alone)
        state = await stored(together)

    assert len(state["leads"]) == LEADS
    merged = next(lead for lead in state["leads"] if lead["email"] == "person1@globex.com")
    assert merged["fill_count"] == 3
    assert len(state["published"]) == len(events) - 1, "the fill published twice is enriched once"
    # Before the batch statements, a batch ran each fill's four or five: 263 for these 68 fills.
    assert sum(one_by_one) >= 4 * LEADS, one_by_one
    # The emails' locks, the fills' look-up, the accounts by domain, the leads and fills written.
    assert batched == 4, batched
