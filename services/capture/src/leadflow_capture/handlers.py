"""Capture's use cases: plain functions over a session and the outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_capture import domain
from leadflow_capture.tables import form as form_table
from leadflow_contracts import LeadActivity, new_event
from leadflow_contracts.envelope import MAX_EVENT_BYTES
from leadflow_kit.db import driver_connection
from leadflow_kit.errors import FieldError
from leadflow_kit.outbox import Outbox


class UnknownForm(LookupError):
    pass


class ArchivedForm(LookupError):
    def __init__(self, form: domain.FormDefinition) -> None:
        super().__init__(form.key)
        self.form = form


class FormExists(ValueError):
    pass


class FormChanged(Exception):
    """The form a request was checked against is no longer the stored one (``current`` is, or None: gone)."""

    def __init__(self, current: domain.FormDefinition | None) -> None:
        super().__init__(current.key if current is not None else "form gone")
        self.current = current


class InvalidSubmission(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class IdempotencyKeyReused(ValueError):
    """The same Idempotency-Key came with a different request."""


@dataclass(frozen=True)
class SubmissionContext:
    ip: str | None = None
    user_agent: str | None = None
    page_url: str | None = None
    double_submit_window: timedelta = timedelta(minutes=10)
    limits: domain.Limits = field(default_factory=domain.Limits)


@dataclass(frozen=True)
class Outcome:
    kind: Literal["accepted", "duplicate", "spam"]
    lead_id: str
    reason: str | None = None


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    headers: dict[str, str]
    body: str


# -- forms --------------------------------------------------------------------------------------


def form_from_row(row: Any) -> domain.FormDefinition:
    return form_from_record(row._mapping)


def form_from_record(record: asyncpg.Record | Mapping[str, Any]) -> domain.FormDefinition:
    return domain.FormDefinition(
        key=record["key"],
        name=record["name"],
        field_mapping=dict(record["field_mapping"]),
        required_fields=tuple(record["required_fields"]),
        allowed_origins=tuple(record["allowed_origins"]),
        success_url=record["success_url"],
        error_url=record["error_url"],
        consent_required=record["consent_required"],
        consent_text=record["consent_text"],
        consent_version=record["consent_version"],
        honeypot_field=record["honeypot_field"],
        min_fill_seconds=record["min_fill_seconds"],
        archived_at=record["archived_at"],
    )


FORM_COLUMNS = ("key, name, field_mapping, required_fields, allowed_origins, success_url, error_url, "
                "consent_required, consent_text, consent_version, honeypot_field, min_fill_seconds, archived_at")
SELECT_FORM = f"SELECT {FORM_COLUMNS} FROM form WHERE key = $1"


async def current_form(session: AsyncSession, key: str) -> domain.FormDefinition | None:
    """The stored definition of form ``key`` (archived or not), or None when there is none."""
    record = await (await driver_connection(session)).fetchrow(SELECT_FORM, key)
    return form_from_record(record) if record is not None else None


async def confirm_form(session: AsyncSession, remembered: domain.FormDefinition | None) -> None:
    """Raise :class:`FormChanged` unless ``remembered`` is still the stored form; None: nothing to check."""
    if remembered is not None:
        _check_form(remembered, await (await driver_connection(session)).fetchrow(SELECT_FORM, remembered.key))


def _check_form(remembered: domain.FormDefinition, record: asyncpg.Record | None) -> None:
    current = form_from_record(record) if record is not None else None
    if current != remembered:
        raise FormChanged(current)


async def find_form_row(session: AsyncSession, key: str) -> Any:
    row = (await session.execute(select(form_table).where(form_table.c.key == key))).first()
    if row is None:
        raise UnknownForm(key)
    return row


async def load_form(session: AsyncSession, key: str, *, allow_archived: bool = False) -> domain.FormDefinition:
    form = form_from_row(await find_form_row(session, key))
    if form.archived and not allow_archived:
        raise ArchivedForm(form)
    return form


async def list_forms(session: AsyncSession, status: str | None = None) -> list[Any]:
    query = select(form_table).order_by(form_table.c.key)
    if status == "active":
        query = query.where(form_table.c.archived_at.is_(None))
    elif status == "archived":
        query = query.where(form_table.c.archived_at.is_not(None))
    return list((await session.execute(query)).all())


async def create_form(session: AsyncSession, values: Mapping[str, Any], now: datetime) -> Any:
    row = (
        await session.execute(
            pg_insert(form_table)
            .values(**values, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=[form_table.c.key])
            .returning(*form_table.c)
        )
    ).first()
    if row is None:
        raise FormExists(values["key"])
    return row


async def update_form(session: AsyncSession, key: str, values: Mapping[str, Any], now: datetime) -> Any:
    row = (
        await session.execute(
            update(form_table)
            .where(form_table.c.key == key)
            .values(**values, updated_at=now)
            .returning(*form_table.c)
        )
    ).first()
    if row is None:
        raise UnknownForm(key)
    return row


# -- submissions --------------------------------------------------------------------------------

LEAD_COLUMNS = ("id, form_key, contact, custom_fields, attribution, submitted_at, email_normalized, consent, "
                "visitor_id, ip, user_agent")
LEAD_VALUES = "$1::text, $2::text, $3::jsonb, $4::jsonb, $5::jsonb, $6::timestamptz, $7::text, $8::jsonb, " \
              "$9::text, $10::text, $11::text"
INSERT_LEAD = f"INSERT INTO lead ({LEAD_COLUMNS}) VALUES ({LEAD_VALUES})"
# The double-submit check and the insert in one statement: the lead is stored only when the same email
# sent no fill to the form since $12; the row returned is that earlier lead.
INSERT_LEAD_UNLESS_RECENT = f"""
WITH recent AS (
    SELECT id FROM lead
    WHERE form_key = $2::text AND email_normalized = $7::text AND submitted_at >= $12::timestamptz
    ORDER BY submitted_at DESC
    LIMIT 1
), inserted AS (
    INSERT INTO lead ({LEAD_COLUMNS})
    SELECT {LEAD_VALUES}
    WHERE NOT EXISTS (SELECT FROM recent)
)
SELECT id FROM recent"""
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))"
LOCK_AND_SELECT_FORM = f"SELECT {FORM_COLUMNS}, pg_advisory_xact_lock(hashtextextended($2::text, 0)) " \
                       "FROM form WHERE key = $1"


async def capture_submission(
    session: AsyncSession,
    outbox: Outbox,
    form: domain.FormDefinition,
    posted: Mapping[str, str],
    now: datetime,
    context: SubmissionContext | None = None,
    *,
    form_confirmed: bool = True,
) -> Outcome:
    """Store the lead and its ``lead.captured`` event in one transaction.

    Spam is answered like an accepted fill (bots learn nothing) but nothing is stored or sent;
    a double submit returns the lead the first fill made. With ``form_confirmed=False`` ``form`` is
    one remembered from an earlier request: before any outcome it is checked against the stored form
    in this transaction, and :class:`FormChanged` is raised when they differ.
    """
    context = context or SubmissionContext()
    remembered = None if form_confirmed else form
    try:
        screened = _screen(form, posted, now, context)
    except InvalidSubmission:
        await confirm_form(session, remembered)
        raise
    if isinstance(screened, Outcome):
        await confirm_form(session, remembered)
        return screened
    submission = screened

    conn = await driver_connection(session)
    email = domain.normalize_email(submission.contact.email)
    lead_id = str(uuid.uuid4())
    consent = domain.consent_record(form, submission, now, context.ip)
    # JSON null, not SQL NULL, for an absent consent: what the column held when SQLAlchemy wrote it.
    lead_values = (
        lead_id,
        form.key,
        json.dumps(submission.contact.model_dump(exclude_none=True)),
        json.dumps(submission.custom_fields),
        json.dumps(submission.attribution.model_dump(exclude_none=True)),
        now,
        email,
        json.dumps(consent.model_dump(mode="json") if consent else None),
        submission.visitor_id,
        context.ip,
        (context.user_agent or "")[:1000] or None,
    )
    if email and context.double_submit_window > timedelta(0):
        # Serialize fills of one email on one form, so two racing double-submits still make one lead.
        # The lock is its own statement: the double-submit check must see what the lock waited for.
        lock_key = f"capture:{form.key}:{email}"
        if remembered is None:
            await conn.execute(LOCK, lock_key)
        else:
            _check_form(remembered, await conn.fetchrow(LOCK_AND_SELECT_FORM, form.key, lock_key))
        existing = await conn.fetchval(INSERT_LEAD_UNLESS_RECENT, *lead_values, now - context.double_submit_window)
        if existing is not None:
            return Outcome("duplicate", existing)
    else:
        await confirm_form(session, remembered)
        await conn.execute(INSERT_LEAD, *lead_values)
    data = domain.lead_captured(lead_id, form, submission, now, consent)
    if len(data.model_dump_json().encode()) > MAX_EVENT_BYTES:
        # Rolls the lead back with the rest of the transaction: an event Kafka would refuse must not be stored.
        raise InvalidSubmission([FieldError(field="body", code="too_large",
                                            message=f"the fields add up to more than {MAX_EVENT_BYTES} bytes")])
    await outbox.add(session, new_event(data, source="capture", subject=lead_id, lead_captured_at=now, time=now))
    return Outcome("accepted", lead_id)


def _screen(form: domain.FormDefinition, posted: Mapping[str, str], now: datetime,
            context: SubmissionContext) -> domain.Submission | Outcome:
    """The checks that need no database: the submission to store, or a spam outcome; raises InvalidSubmission."""
    errors = domain.field_count_errors(posted, context.limits)
    if errors:
        raise InvalidSubmission(errors)
    submission = domain.map_submission(form, posted)
    if submission.honeypot:
        return Outcome("spam", str(uuid.uuid4()), "honeypot")
    # Field errors before the fill-time check: a quick person with a typo must see the typo.
    errors = domain.validate_submission(form, submission, context.limits)
    if errors:
        raise InvalidSubmission(errors)
    reason = domain.spam_reason(form, submission, now)
    if reason is not None:
        return Outcome("spam", str(uuid.uuid4()), reason)
    attribution = domain.with_page_attribution(submission.attribution, context.page_url)
    return domain.Submission(**{**submission.__dict__, "attribution": attribution})


# -- idempotency --------------------------------------------------------------------------------


async def claim_idempotency_key(
    session: AsyncSession, scope: str, key: str, fingerprint: str
) -> StoredResponse | None:
    """Claim ``key`` for this transaction, or return the response stored under it.

    A concurrent request with the same key waits on the unique index until the first one
    commits (then replays its response) or rolls back (then takes the key itself).
    """
    conn = await driver_connection(session)
    claimed = await conn.fetchval(
        "INSERT INTO idempotency_key (scope, key, fingerprint) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING key",
        scope, key, fingerprint,
    )
    if claimed is not None:
        return None
    # A statement of its own: only a new snapshot sees the row the insert waited for.
    row = await conn.fetchrow(
        "SELECT fingerprint, status_code, headers, body FROM idempotency_key WHERE scope = $1 AND key = $2",
        scope, key,
    )
    if row is None:
        raise LookupError(f"idempotency key {key} vanished while claimed")
    if row["fingerprint"] != fingerprint:
        raise IdempotencyKeyReused(key)
    return StoredResponse(row["status_code"], dict(row["headers"]), row["body"] or "")


async def store_idempotent_response(session: AsyncSession, scope: str, key: str, response: StoredResponse) -> None:
    await (await driver_connection(session)).execute(
        "UPDATE idempotency_key SET status_code = $3, headers = $4::jsonb, body = $5 WHERE scope = $1 AND key = $2",
        scope, key, response.status_code, json.dumps(response.headers), response.body,
    )


# -- activities ---------------------------------------------------------------------------------

INSERT_ACTIVITIES = """
INSERT INTO activity (id, activity_type, lead_id, email, visitor_id, page_url, properties, occurred_at)
SELECT a.id, a.activity_type, a.lead_id, a.email, a.visitor_id, a.page_url, a.properties::jsonb, a.occurred_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[])
     AS a(id, activity_type, lead_id, email, visitor_id, page_url, properties, occurred_at)
ON CONFLICT DO NOTHING
RETURNING id"""


def activity_key(data: LeadActivity, person_secret: bytes) -> str:
    """Kafka key of an activity: the lead when known, else the visitor, else an opaque id of the email."""
    return data.lead_id or data.visitor_id or domain.person_key(data.email or "", person_secret)


async def record_activities(
    session: AsyncSession, outbox: Outbox, activities: list[LeadActivity], person_secret: bytes
) -> list[str]:
    """Store each activity and its ``lead.activity`` event; a retried activity id is recorded once."""
    for index, data in enumerate(activities):
        if len(data.model_dump_json().encode()) > MAX_EVENT_BYTES:
            raise InvalidSubmission([FieldError(field=f"activities.{index}", code="too_large",
                                                message=f"the activity exceeds {MAX_EVENT_BYTES} bytes")])
    conn = await driver_connection(session)
    rows = await conn.fetch(
        INSERT_ACTIVITIES,
        [a.activity_id for a in activities],
        [a.activity_type for a in activities],
        [a.lead_id for a in activities],
        [a.email for a in activities],
        [a.visitor_id for a in activities],
        [a.page_url for a in activities],
        [json.dumps(a.properties) for a in activities],
        [a.occurred_at for a in activities],
    )
    inserted = {row["id"] for row in rows}
    for data in activities:
        if data.activity_id in inserted:
            inserted.discard(data.activity_id)  # an id repeated in the batch was stored once, by its first
            await outbox.add(
                session,
                new_event(data, source="capture", subject=activity_key(data, person_secret), time=data.occurred_at,
                          event_id=data.activity_id),
            )
    return [a.activity_id for a in activities]
