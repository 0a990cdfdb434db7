"""Data-subject requests (GDPR articles 15 and 17): the part every service shares.

A service declares where it keeps personal data (``PersonalData``: tables and the rows of one
person, found by email or lead id). From that one declaration the kit erases the person when a
``privacy.erasure_requested`` event arrives (in the consumer's transaction, so a replayed request
erases nothing twice and always answers), answers with ``privacy.erasure_completed``, and serves
the person's rows at ``GET /v1/admin/privacy/export``. Capture takes the requests and gathers the
answers (docs/runbook.md, "Erasure and export").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from leadflow_contracts import Event, PrivacyErasureCompleted, PrivacyErasureRequested, follow_up, topics
from leadflow_kit.auth import require_scope
from leadflow_kit.consumer import EventConsumer, UnitOfWork
from leadflow_kit.db import driver_connection
from leadflow_kit.errors import FieldError, problem_response
from leadflow_kit.platform import PlatformDep

MAX_LEAD_IDS = 100


@dataclass(frozen=True)
class PersonalRows:
    """Rows of ``table`` that belong to one person: ``where`` is SQL over them, naming ``:email`` (the
    normalized email, NULL when unknown) and ``:lead_ids`` (a text array)."""

    table: str
    where: str


@dataclass(frozen=True)
class PersonalData:
    """Where a service keeps personal data. ``rows`` are erased in order (rows that reference others
    first); ``lead_ids`` is SQL selecting the lead ids this service knows for ``:email``."""

    service: str
    rows: Sequence[PersonalRows]
    lead_ids: str | None = None
    # The topics this service publishes keyed by lead id: an erasure ends each of the person's keys
    # there with a tombstone, so a compacted topic forgets them and replays bring nothing back.
    keyed_topics: Sequence[str] = ()


# A service that sends webhooks keeps the payloads it signed and the log of their attempts.
WEBHOOK_ROWS = (
    PersonalRows("webhook_attempt",
                 "delivery_id IN (SELECT id FROM webhook_delivery WHERE lead_id = ANY(:lead_ids))"),
    PersonalRows("webhook_delivery", "lead_id = ANY(:lead_ids)"),
)


def _bind(sql: str, email: str | None, lead_ids: list[str]) -> tuple[str, list[Any]]:
    args: list[Any] = []
    for name, value, cast in (("email", email, "text"), ("lead_ids", lead_ids, "text[]")):
        if f":{name}" in sql:
            args.append(value)
            sql = sql.replace(f":{name}", f"${len(args)}::{cast}")
    return sql, args


async def lead_ids_of(
    conn: asyncpg.Connection, data: PersonalData, email: str | None, lead_ids: list[str]
) -> list[str]:
    """The lead ids given, and those this service knows for the email."""
    found = list(dict.fromkeys(lead_ids))
    if data.lead_ids is not None and email:
        sql, args = _bind(data.lead_ids, email, found)
        found += [row[0] for row in await conn.fetch(sql, *args) if row[0] not in found]
    return found


async def erase_person(
    conn: asyncpg.Connection, data: PersonalData, email: str | None, lead_ids: list[str]
) -> tuple[int, list[str]]:
    """Delete every row of the person; returns how many went and the person's lead ids."""
    ids = await lead_ids_of(conn, data, email, lead_ids)
    erased = 0
    for rows in data.rows:
        sql, args = _bind(f"WITH gone AS (DELETE FROM {rows.table} WHERE {rows.where} RETURNING 1) "
                          "SELECT count(*) FROM gone", email, ids)
        erased += int(await conn.fetchval(sql, *args))
    return erased, ids


async def export_person(
    conn: asyncpg.Connection, data: PersonalData, email: str | None, lead_ids: list[str]
) -> dict[str, Any]:
    """Every row of the person, table by table, as JSON values."""
    ids = await lead_ids_of(conn, data, email, lead_ids)
    tables: dict[str, list[Any]] = {}
    for rows in data.rows:
        sql, args = _bind(f"SELECT to_jsonb(t)::text FROM {rows.table} AS t WHERE {rows.where}", email, ids)
        tables[rows.table] = [json.loads(row[0]) for row in await conn.fetch(sql, *args)]
    return {"service": data.service, "lead_ids": ids, "tables": tables}


CompletionHandler = Callable[[list[Event[PrivacyErasureCompleted]], UnitOfWork[Any]], Awaitable[None]]


def subscribe_erasures(
    consumer: EventConsumer[Any], data: PersonalData, on_completed: CompletionHandler | None = None
) -> None:
    """Erase on every ``privacy.erasure_requested`` and answer; ``on_completed`` sees the answers."""

    @consumer.subscribe(topics.PRIVACY, PrivacyErasureRequested)
    async def erase_people(events: list[Event[PrivacyErasureRequested]], uow: UnitOfWork[Any]) -> None:
        for event in events:
            await erase_and_answer(event, uow, data)

    if on_completed is not None:
        consumer.subscribe(topics.PRIVACY, PrivacyErasureCompleted)(on_completed)


async def erase_and_answer(event: Event[PrivacyErasureRequested], uow: UnitOfWork[Any], data: PersonalData) -> None:
    request = event.data
    conn = await driver_connection(uow.session)
    erased, lead_ids = await erase_person(conn, data, request.email, request.lead_ids)
    for topic in data.keyed_topics:
        for lead_id in lead_ids:
            uow.publish_tombstone(topic, lead_id)
    completed = PrivacyErasureCompleted(
        erasure_id=request.erasure_id, service=data.service, rows_erased=erased, completed_at=uow.now()
    )
    await uow.publish(follow_up(event, completed, source=data.service, time=uow.now()))


def person_of(email: str | None, lead_ids: list[str]) -> tuple[str | None, list[str]] | JSONResponse:
    """The normalized email and lead ids a request names, or the 422 that says why it names nobody."""
    if any("\x00" in value for value in (email or "", *lead_ids)):
        return _invalid("email", "invalid_characters", "the email and lead ids may not contain NUL characters")
    normalized = email.strip().lower() if email and email.strip() else None
    ids = [i for i in lead_ids if i]
    if normalized is None and not ids:
        return _invalid("email", "missing", "an email or a lead_id is required")
    return normalized, ids


def _invalid(field: str, code: str, message: str) -> JSONResponse:
    return problem_response(422, "The request names no person; see errors.",
                            [FieldError(field=field, code=code, message=message)])


class PersonExport(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "service": "scoring", "lead_ids": ["0d9c3c0e-8a53-4f1e-9a57-3f1f3c2b7a10"],
        "tables": {"lead_score": [{"lead_id": "0d9c3c0e-8a53-4f1e-9a57-3f1f3c2b7a10", "email": "ada@example.com",
                                   "score": 52.0, "lifecycle_stage": "mql"}]},
    }]})

    service: str
    lead_ids: list[str]
    tables: dict[str, list[Any]] = Field(description="Table name -> the person's rows, as stored")


def privacy_router(data: PersonalData) -> APIRouter:
    router = APIRouter(tags=["privacy"])

    @router.get(
        "/v1/admin/privacy/export",
        response_model=PersonExport,
        dependencies=[Depends(require_scope("privacy:read"))],
        summary="Everything this service holds about a person (GDPR art. 15), by email and/or lead ids",
        responses={422: {"description": "Neither an email nor a lead id"}},
    )
    async def export(
        platform: PlatformDep,
        email: Annotated[str | None, Query(max_length=320)] = None,
        lead_id: Annotated[list[str] | None, Query(max_length=MAX_LEAD_IDS)] = None,
    ) -> Any:
        subject = person_of(email, lead_id or [])
        if isinstance(subject, JSONResponse):
            return subject
        normalized, lead_ids = subject
        async with platform.db.transaction() as session:
            return await export_person(await driver_connection(session), data, normalized, lead_ids)

    return router
