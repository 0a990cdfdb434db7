"""Data-subject requests start here: capture records an erasure, announces it, and gathers the answers.

Capture knows every fill, so it turns "this email" or "this lead" into the person's lead ids. The
request row and its ``privacy.erasure_requested`` event commit together (the outbox), so a request
survives any crash; every service, capture included, erases on that event and answers with
``privacy.erasure_completed``, which capture records per service.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_capture import domain
from leadflow_contracts import Event, PrivacyErasureCompleted, PrivacyErasureRequested, new_event, topics
from leadflow_kit.consumer import UnitOfWork
from leadflow_kit.db import driver_connection
from leadflow_kit.outbox import Outbox
from leadflow_kit.privacy import PersonalData, PersonalRows

# Every service that holds data about a person answers an erasure.
SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")

PERSONAL_DATA = PersonalData(
    "capture",
    rows=(
        PersonalRows("activity", "email = :email OR lead_id = ANY(:lead_ids)"),
        # A stored answer to a retried post names the lead it created.
        PersonalRows("idempotency_key",
                     "body LIKE ANY (ARRAY(SELECT '%' || id || '%' FROM unnest(:lead_ids) AS id))"),
        PersonalRows("lead", "id = ANY(:lead_ids) OR email_normalized = :email"),
    ),
    lead_ids="SELECT id FROM lead WHERE email_normalized = :email",
    keyed_topics=(topics.CAPTURED, topics.ACTIVITY),
)


@dataclass(frozen=True)
class Person:
    email: str | None
    lead_ids: list[str]


async def find_person(conn: asyncpg.Connection, email: str | None, lead_ids: list[str]) -> Person:
    """The person an email or lead ids name: by lead id, the email of those fills, and so all their fills."""
    if email is None:
        email = await conn.fetchval(
            "SELECT email_normalized FROM lead WHERE id = ANY($1::text[]) AND email_normalized IS NOT NULL "
            "ORDER BY submitted_at LIMIT 1", lead_ids)
    found = list(dict.fromkeys(lead_ids))
    if email is not None:
        rows = await conn.fetch("SELECT id FROM lead WHERE email_normalized = $1 ORDER BY submitted_at", email)
        found += [row["id"] for row in rows if row["id"] not in found]
    return Person(email, found)


async def request_erasure(
    session: AsyncSession, outbox: Outbox, email: str | None, lead_ids: list[str], person_secret: bytes,
    now: datetime,
) -> str:
    """Record the request and announce it; an open request for the same person is returned instead."""
    conn = await driver_connection(session)
    person = await find_person(conn, email, lead_ids)
    person_key = domain.person_key(person.email, person_secret) if person.email else None
    if person_key is not None:
        # Serializes two requests for one person, so the second finds the first.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", person_key)
        open_request = await conn.fetchval(
            "SELECT id FROM erasure_request WHERE person_key = $1 AND completed_at IS NULL", person_key)
        if open_request is not None:
            return str(open_request)
    erasure_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO erasure_request (id, person_key, lead_ids, requested_at) VALUES ($1, $2, $3, $4)",
        erasure_id, person_key, person.lead_ids, now)
    requested = PrivacyErasureRequested(erasure_id=erasure_id, email=person.email, lead_ids=person.lead_ids,
                                        requested_at=now)
    await outbox.add(session, new_event(requested, source="capture", subject=erasure_id, time=now))
    return erasure_id


async def record_completion(event: Event[PrivacyErasureCompleted], uow: UnitOfWork) -> None:
    """One service's answer; the request is complete once every service answered."""
    done = event.data
    conn = await driver_connection(uow.session)
    await conn.execute(
        "INSERT INTO erasure_status (erasure_id, service, rows_erased, completed_at) "
        "SELECT id, $2, $3, $4 FROM erasure_request WHERE id = $1 ON CONFLICT DO NOTHING",
        done.erasure_id, done.service, done.rows_erased, done.completed_at)
    await conn.execute(
        "UPDATE erasure_request SET completed_at = $2 WHERE id = $1 AND completed_at IS NULL "
        "AND (SELECT count(*) FROM erasure_status WHERE erasure_id = $1 AND service = ANY($3::text[])) = $4",
        done.erasure_id, uow.now(), list(SERVICES), len(SERVICES))


async def erasure_status(session: AsyncSession, erasure_id: str) -> dict[str, Any] | None:
    conn = await driver_connection(session)
    request = await conn.fetchrow(
        "SELECT id, lead_ids, requested_at, completed_at FROM erasure_request WHERE id = $1", erasure_id)
    if request is None:
        return None
    answers = {row["service"]: row for row in await conn.fetch(
        "SELECT service, rows_erased, completed_at FROM erasure_status WHERE erasure_id = $1", erasure_id)}
    services = {
        name: {"status": "completed", "rows_erased": answers[name]["rows_erased"],
               "completed_at": answers[name]["completed_at"]}
        if name in answers else {"status": "pending", "rows_erased": None, "completed_at": None}
        for name in SERVICES
    }
    return {
        "erasure_id": request["id"],
        "status": "completed" if request["completed_at"] is not None else "pending",
        "lead_ids": list(request["lead_ids"]),
        "requested_at": request["requested_at"],
        "completed_at": request["completed_at"],
        "services": services,
    }
