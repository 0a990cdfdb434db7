"""Capture's use cases: plain functions over a session and the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_capture import domain
from leadflow_capture.tables import activity as activity_table
from leadflow_capture.tables import form as form_table
from leadflow_capture.tables import idempotency_key as idempotency_table
from leadflow_capture.tables import lead as lead_table
from leadflow_contracts import LeadActivity, new_event
from leadflow_contracts.envelope import MAX_EVENT_BYTES
from leadflow_kit.errors import FieldError
from leadflow_kit.outbox import Outbox

IDEMPOTENCY_RETENTION = timedelta(hours=24)


class UnknownForm(LookupError):
    pass


class ArchivedForm(LookupError):
    def __init__(self, form: domain.FormDefinition) -> None:
        super().__init__(form.key)
        self.form = form


class FormExists(ValueError):
    pass


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
    return domain.FormDefinition(
        key=row.key,
        name=row.name,
        field_mapping=dict(row.field_mapping),
        required_fields=tuple(row.required_fields),
        allowed_origins=tuple(row.allowed_origins),
        success_url=row.success_url,
        error_url=row.error_url,
        consent_required=row.consent_required,
        consent_text=row.consent_text,
        consent_version=row.consent_version,
        honeypot_field=row.honeypot_field,
        min_fill_seconds=row.min_fill_seconds,
        archived_at=row.archived_at,
    )


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


async def capture_submission(
    session: AsyncSession,
    outbox: Outbox,
    form: domain.FormDefinition,
    posted: Mapping[str, str],
    now: datetime,
    context: SubmissionContext | None = None,
) -> Outcome:
    """Store the lead and its ``lead.captured`` event in one transaction.

    Spam is answered like an accepted fill (bots learn nothing) but nothing is stored or sent;
    a double submit returns the lead the first fill made.
    """
    context = context or SubmissionContext()
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
    submission = domain.Submission(**{**submission.__dict__, "attribution": attribution})

    email = domain.normalize_email(submission.contact.email)
    if email and context.double_submit_window > timedelta(0):
        existing = await _recent_lead(session, form.key, email, now - context.double_submit_window)
        if existing is not None:
            return Outcome("duplicate", existing)

    lead_id = str(uuid.uuid4())
    consent = domain.consent_record(form, submission, now, context.ip)
    await session.execute(
        insert(lead_table).values(
            id=lead_id,
            form_key=form.key,
            contact=submission.contact.model_dump(exclude_none=True),
            custom_fields=submission.custom_fields,
            attribution=submission.attribution.model_dump(exclude_none=True),
            submitted_at=now,
            email_normalized=email,
            consent=consent.model_dump(mode="json") if consent else None,
            visitor_id=submission.visitor_id,
            ip=context.ip,
            user_agent=(context.user_agent or "")[:1000] or None,
        )
    )
    data = domain.lead_captured(lead_id, form, submission, now, consent)
    if len(data.model_dump_json().encode()) > MAX_EVENT_BYTES:
        # Rolls the lead back with the rest of the transaction: an event Kafka would refuse must not be stored.
        raise InvalidSubmission([FieldError(field="body", code="too_large",
                                            message=f"the fields add up to more than {MAX_EVENT_BYTES} bytes")])
    await outbox.add(session, new_event(data, source="capture", subject=lead_id, lead_captured_at=now, time=now))
    return Outcome("accepted", lead_id)


async def _recent_lead(session: AsyncSession, form_key: str, email: str, since: datetime) -> str | None:
    # Serialize fills of one email on one form, so two racing double-submits still make one lead.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"capture:{form_key}:{email}"}
    )
    return (
        await session.execute(
            select(lead_table.c.id)
            .where(
                lead_table.c.form_key == form_key,
                lead_table.c.email_normalized == email,
                lead_table.c.submitted_at >= since,
            )
            .order_by(lead_table.c.submitted_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


# -- idempotency --------------------------------------------------------------------------------


async def claim_idempotency_key(
    session: AsyncSession, scope: str, key: str, fingerprint: str
) -> StoredResponse | None:
    """Claim ``key`` for this transaction, or return the response stored under it.

    A concurrent request with the same key waits on the unique index until the first one
    commits (then replays its response) or rolls back (then takes the key itself).
    """
    claimed = (
        await session.execute(
            pg_insert(idempotency_table)
            .values(scope=scope, key=key, fingerprint=fingerprint)
            .on_conflict_do_nothing()
            .returning(idempotency_table.c.key)
        )
    ).first()
    if claimed is not None:
        return None
    row = (
        await session.execute(
            select(idempotency_table).where(idempotency_table.c.scope == scope, idempotency_table.c.key == key)
        )
    ).one()
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReused(key)
    return StoredResponse(row.status_code, dict(row.headers), row.body or "")


async def store_idempotent_response(session: AsyncSession, scope: str, key: str, response: StoredResponse) -> None:
    await session.execute(
        update(idempotency_table)
        .where(idempotency_table.c.scope == scope, idempotency_table.c.key == key)
        .values(status_code=response.status_code, headers=response.headers, body=response.body)
    )


async def forget_old_idempotency_keys(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(
        delete(idempotency_table).where(idempotency_table.c.created_at < now - IDEMPOTENCY_RETENTION)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- activities ---------------------------------------------------------------------------------


def activity_key(data: LeadActivity) -> str:
    """Kafka key of an activity: the lead when known, else the visitor, else the email."""
    return data.lead_id or data.visitor_id or (data.email or "").lower()


async def record_activities(session: AsyncSession, outbox: Outbox, activities: list[LeadActivity]) -> list[str]:
    """Store each activity and its ``lead.activity`` event; a retried activity id is recorded once."""
    for index, data in enumerate(activities):
        if len(data.model_dump_json().encode()) > MAX_EVENT_BYTES:
            raise InvalidSubmission([FieldError(field=f"activities.{index}", code="too_large",
                                                message=f"the activity exceeds {MAX_EVENT_BYTES} bytes")])
        inserted = (
            await session.execute(
                pg_insert(activity_table)
                .values(
                    id=data.activity_id,
                    activity_type=data.activity_type,
                    lead_id=data.lead_id,
                    email=data.email,
                    visitor_id=data.visitor_id,
                    page_url=data.page_url,
                    properties=data.properties,
                    occurred_at=data.occurred_at,
                )
                .on_conflict_do_nothing()
                .returning(activity_table.c.id)
            )
        ).first()
        if inserted is not None:
            await outbox.add(
                session,
                new_event(data, source="capture", subject=activity_key(data), time=data.occurred_at,
                          event_id=data.activity_id),
            )
    return [a.activity_id for a in activities]
