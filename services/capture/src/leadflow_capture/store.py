"""Every SQL statement of capture, behind named methods that take the transaction first and take and
return typed values. The hot path (form reads, leads, idempotency keys, activities) talks asyncpg
through ``driver_connection``; the admin API's form CRUD uses SQLAlchemy Core."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_capture import privacy
from leadflow_capture.domain import FormDefinition, NewLead, Person, StoredForm
from leadflow_capture.schemas import FormCreate
from leadflow_capture.tables import form as form_table
from leadflow_contracts import LeadActivity, PrivacyErasureCompleted
from leadflow_kit.db import driver_connection
from leadflow_kit.privacy import export_person


@dataclass(frozen=True)
class StoredResponse:
    """The answer given to a request that carried an Idempotency-Key, replayed to its retries."""

    status_code: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class RecentLead:
    """A lead an email's repeat fill within the double-submit window is a duplicate of."""

    id: str
    submitted_at: datetime


@dataclass(frozen=True)
class IdempotencyRecord:
    fingerprint: str
    response: StoredResponse


FORM_COLUMNS = ("key, name, field_mapping, required_fields, allowed_origins, success_url, error_url, "
                "consent_required, consent_text, consent_version, honeypot_field, min_fill_seconds, archived_at")
SELECT_FORM = f"SELECT {FORM_COLUMNS} FROM form WHERE key = $1"
FORMS_READ = "leadflow_capture.forms_read"
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))"
# A group of fills' locks ($2), in one order for every transaction (the lock ids' order: two groups never
# deadlock; PostgreSQL takes them row by row after the ORDER BY), and the forms $1 names, in one round trip.
# The single row of the locks' count is the outer side of the join: it is there (and the locks taken) even
# when no form is read.
LOCK_AND_SELECT_FORMS = f"""
SELECT {FORM_COLUMNS}
FROM (SELECT count(pg_advisory_xact_lock(k)) AS locks
      FROM (SELECT DISTINCT hashtextextended(lock_key, 0) AS k FROM unnest($2::text[]) AS lock_key ORDER BY k) AS keys
     ) AS locked
LEFT JOIN form ON form.key = ANY($1::text[])"""

LEAD_COLUMNS = ("id, form_key, contact, custom_fields, attribution, submitted_at, email_normalized, consent, "
                "visitor_id, ip, user_agent")
# A group's double-submit lookups and its new leads in one statement, in the order given: for each lead, the
# latest lead of its email on its form submitted since $12 (NULL: none looked up); a lead marked in $13 is
# stored unless one was found. Run after the fills' locks, so it sees the fills they waited for.
INSERT_LEADS_UNLESS_RECENT = f"""
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::boolean[])
        WITH ORDINALITY AS g({LEAD_COLUMNS}, since, storable, position)
), found AS (
    SELECT given.*, recent.id AS recent_id, recent.submitted_at AS recent_at
    FROM given LEFT JOIN LATERAL (
        SELECT lead.id, lead.submitted_at FROM lead
        WHERE lead.form_key = given.form_key AND lead.email_normalized = given.email_normalized
          AND lead.submitted_at >= given.since
        ORDER BY lead.submitted_at DESC
        LIMIT 1
    ) AS recent ON true
), inserted AS (
    INSERT INTO lead ({LEAD_COLUMNS})
    SELECT id, form_key, contact::jsonb, custom_fields::jsonb, attribution::jsonb, submitted_at, email_normalized,
           consent::jsonb, visitor_id, ip, user_agent
    FROM found WHERE storable AND recent_id IS NULL
    ORDER BY position
)
SELECT recent_id, recent_at FROM found ORDER BY position"""

INSERT_ACTIVITIES = """
INSERT INTO activity (id, activity_type, lead_id, email, visitor_id, page_url, properties, occurred_at)
SELECT a.id, a.activity_type, a.lead_id, a.email, a.visitor_id, a.page_url, a.properties::jsonb, a.occurred_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::timestamptz[])
     AS a(id, activity_type, lead_id, email, visitor_id, page_url, properties, occurred_at)
ON CONFLICT DO NOTHING
RETURNING id"""


def form_of(record: asyncpg.Record | Mapping[str, Any]) -> FormDefinition:
    return FormDefinition(
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


def _stored_form(row: Any) -> StoredForm:
    return StoredForm(form_of(row._mapping), row.created_at, row.updated_at)


def _stored_form_or_none(row: Any) -> StoredForm | None:
    return _stored_form(row) if row is not None else None


def _lead_arguments(lead: NewLead) -> tuple[Any, ...]:
    # JSON null, not SQL NULL, for an absent consent: what the column held when SQLAlchemy wrote it.
    return (
        lead.id,
        lead.form_key,
        lead.contact.model_dump_json(exclude_none=True),
        json.dumps(lead.custom_fields),
        lead.attribution.model_dump_json(exclude_none=True),
        lead.submitted_at,
        lead.email_normalized,
        lead.consent.model_dump_json() if lead.consent else "null",
        lead.visitor_id,
        lead.ip,
        lead.user_agent,
    )


def _forms_read(session: AsyncSession) -> dict[str, FormDefinition | None]:
    """The forms this transaction has read, by key (kept on the session, which lives as long as it)."""
    read: dict[str, FormDefinition | None] = session.info.setdefault(FORMS_READ, {})
    return read


class CaptureStore:
    # -- forms, as a submission reads them -------------------------------------------------------
    #
    # A transaction reads each form once: a group commit's fills of one form all check their
    # remembered definition against that read. No lock orders an admin's edit against fills (none
    # did before either: a fill checked just before an edit commits, then commits after it), so the
    # group's fills answer as of its first read, as fills sent a moment earlier would. A group rolled
    # back runs its fills again one by one, each in a new transaction that reads the form afresh.

    async def current_form(self, session: AsyncSession, key: str) -> FormDefinition | None:
        """The stored definition of form ``key`` (archived or not), or None when there is none."""
        read = _forms_read(session)
        if key not in read:
            record = await (await driver_connection(session)).fetchrow(SELECT_FORM, key)
            read[key] = form_of(record) if record is not None else None
        return read[key]

    async def lock(self, session: AsyncSession, key: str) -> None:
        """Hold the transaction-scoped advisory lock named ``key`` until the transaction ends."""
        await (await driver_connection(session)).execute(LOCK, key)

    async def lock_and_read_forms(self, session: AsyncSession, lock_keys: list[str],
                                  form_keys: list[str]) -> dict[str, FormDefinition | None]:
        """``lock`` each of ``lock_keys`` (in one order, whatever the order given) and ``current_form`` of each of
        ``form_keys``, in one round trip; a form this transaction has read is not read again."""
        read = _forms_read(session)
        unread = [key for key in dict.fromkeys(form_keys) if key not in read]
        if lock_keys or unread:
            rows = await (await driver_connection(session)).fetch(LOCK_AND_SELECT_FORMS, unread, lock_keys)
            found = {row["key"]: form_of(row) for row in rows if row["key"] is not None}
            read.update({key: found.get(key) for key in unread})
        return {key: read[key] for key in form_keys}

    # -- forms, as the admin API keeps them ------------------------------------------------------

    async def list_forms(self, session: AsyncSession, status: str | None = None) -> list[StoredForm]:
        query = select(form_table).order_by(form_table.c.key)
        if status == "active":
            query = query.where(form_table.c.archived_at.is_(None))
        elif status == "archived":
            query = query.where(form_table.c.archived_at.is_not(None))
        return [_stored_form(row) for row in (await session.execute(query)).all()]

    async def get_form(self, session: AsyncSession, key: str) -> StoredForm | None:
        return _stored_form_or_none((await session.execute(select(form_table).where(form_table.c.key == key))).first())

    async def create_form(self, session: AsyncSession, body: FormCreate, now: datetime) -> StoredForm | None:
        """The new form, or None when a form with its key exists."""
        return _stored_form_or_none((await session.execute(
            pg_insert(form_table)
            .values(**body.model_dump(), created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=[form_table.c.key])
            .returning(*form_table.c)
        )).first())

    async def update_form(
        self, session: AsyncSession, key: str, changes: Mapping[str, Any], now: datetime
    ) -> StoredForm | None:
        """Set the columns ``changes`` names; the form as it now is, or None when there is no such form."""
        return _stored_form_or_none((await session.execute(
            update(form_table).where(form_table.c.key == key).values(**changes, updated_at=now)
            .returning(*form_table.c)
        )).first())

    async def seed_demo_form(self, session: AsyncSession) -> None:
        """The `demo` form: email required, any origin may post."""
        await session.execute(
            pg_insert(form_table)
            .values(key="demo", name="Demo request", field_mapping={}, required_fields=["email"],
                    allowed_origins=["*"])
            # A demo form made before forms had allowed origins gets them; any other change is kept.
            .on_conflict_do_update(
                index_elements=[form_table.c.key],
                set_={"allowed_origins": ["*"]},
                where=form_table.c.allowed_origins == text("'[]'::jsonb"),
            )
        )

    # -- leads -----------------------------------------------------------------------------------

    async def insert_leads_unless_recent(
        self, session: AsyncSession, leads: list[tuple[NewLead, datetime | None, bool]]
    ) -> list[RecentLead | None]:
        """For each (lead, since, storable), in order: the latest lead of its email on its form submitted since
        ``since`` (None: not looked for), or None; a storable lead is stored unless one was found."""
        if not leads:
            return []
        columns = zip(*((*_lead_arguments(lead), since, storable) for lead, since, storable in leads), strict=True)
        rows = await (await driver_connection(session)).fetch(INSERT_LEADS_UNLESS_RECENT,
                                                              *(list(column) for column in columns))
        return [RecentLead(str(row["recent_id"]), row["recent_at"]) if row["recent_id"] is not None else None
                for row in rows]

    # -- idempotency keys ------------------------------------------------------------------------

    async def claim_idempotency_key(self, session: AsyncSession, scope: str, key: str, fingerprint: str) -> bool:
        """Claim ``key`` for this transaction; False when it is taken. A concurrent request with the same key
        waits on the unique index until the first one commits (False) or rolls back (True)."""
        claimed = await (await driver_connection(session)).fetchval(
            "INSERT INTO idempotency_key (scope, key, fingerprint) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING key",
            scope, key, fingerprint,
        )
        return claimed is not None

    async def idempotency_record(self, session: AsyncSession, scope: str, key: str) -> IdempotencyRecord | None:
        row = await (await driver_connection(session)).fetchrow(
            "SELECT fingerprint, status_code, headers, body FROM idempotency_key WHERE scope = $1 AND key = $2",
            scope, key,
        )
        if row is None:
            return None
        return IdempotencyRecord(row["fingerprint"],
                                 StoredResponse(row["status_code"], dict(row["headers"]), row["body"] or ""))

    async def save_idempotent_response(
        self, session: AsyncSession, scope: str, key: str, response: StoredResponse
    ) -> None:
        await (await driver_connection(session)).execute(
            "UPDATE idempotency_key SET status_code = $3, headers = $4::jsonb, body = $5 WHERE scope = $1 AND key = $2",
            scope, key, response.status_code, json.dumps(response.headers), response.body,
        )

    # -- activities ------------------------------------------------------------------------------

    async def insert_activities(self, session: AsyncSession, activities: list[LeadActivity]) -> set[str]:
        """Store the activities; returns the ids stored now (not those stored before, each id once)."""
        rows = await (await driver_connection(session)).fetch(
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
        return {row["id"] for row in rows}

    # -- data-subject requests -------------------------------------------------------------------

    async def find_person(self, session: AsyncSession, email: str | None, lead_ids: list[str]) -> Person:
        """The person an email or lead ids name: by lead id, the email of those fills, and so all their fills."""
        conn = await driver_connection(session)
        if email is None:
            email = await conn.fetchval(
                "SELECT email_normalized FROM lead WHERE id = ANY($1::text[]) AND email_normalized IS NOT NULL "
                "ORDER BY submitted_at LIMIT 1", lead_ids)
        found = list(dict.fromkeys(lead_ids))
        if email is not None:
            rows = await conn.fetch("SELECT id FROM lead WHERE email_normalized = $1 ORDER BY submitted_at", email)
            found += [row["id"] for row in rows if row["id"] not in found]
        return Person(email, found)

    async def export_person(self, session: AsyncSession, person: Person) -> dict[str, Any]:
        """Every row capture holds of the person, table by table."""
        return await export_person(await driver_connection(session), privacy.PERSONAL_DATA, person.email,
                                   person.lead_ids)

    async def open_erasure(self, session: AsyncSession, person_key: str) -> str | None:
        """The id of the person's erasure request still waiting for answers, if any."""
        found = await (await driver_connection(session)).fetchval(
            "SELECT id FROM erasure_request WHERE person_key = $1 AND completed_at IS NULL", person_key)
        return str(found) if found is not None else None

    async def open_erasure_of_leads(self, session: AsyncSession, lead_ids: list[str]) -> str | None:
        """The id of an erasure request still waiting for answers that erases one of ``lead_ids``, if any
        (the oldest; requests are few, so no index)."""
        found = await (await driver_connection(session)).fetchval(
            "SELECT id FROM erasure_request WHERE lead_ids && $1::varchar[] AND completed_at IS NULL "
            "ORDER BY requested_at LIMIT 1", lead_ids)
        return str(found) if found is not None else None

    async def add_erasure(self, session: AsyncSession, erasure: privacy.NewErasure) -> None:
        await (await driver_connection(session)).execute(
            "INSERT INTO erasure_request (id, person_key, lead_ids, requested_at) VALUES ($1, $2, $3, $4)",
            erasure.erasure_id, erasure.person_key, erasure.lead_ids, erasure.requested_at)

    async def record_erasure_answer(
        self, session: AsyncSession, answer: PrivacyErasureCompleted, now: datetime
    ) -> None:
        """One service's answer; the request is complete (at ``now``) once every service answered."""
        conn = await driver_connection(session)
        await conn.execute(
            "INSERT INTO erasure_status (erasure_id, service, rows_erased, completed_at) "
            "SELECT id, $2, $3, $4 FROM erasure_request WHERE id = $1 ON CONFLICT DO NOTHING",
            answer.erasure_id, answer.service, answer.rows_erased, answer.completed_at)
        await conn.execute(
            "UPDATE erasure_request SET completed_at = $2 WHERE id = $1 AND completed_at IS NULL "
            "AND (SELECT count(*) FROM erasure_status WHERE erasure_id = $1 AND service = ANY($3::text[])) = $4",
            answer.erasure_id, now, list(privacy.SERVICES), len(privacy.SERVICES))

    async def erasure(self, session: AsyncSession, erasure_id: str) -> privacy.Erasure | None:
        conn = await driver_connection(session)
        request = await conn.fetchrow(
            "SELECT id, lead_ids, requested_at, completed_at FROM erasure_request WHERE id = $1", erasure_id)
        if request is None:
            return None
        answers = {row["service"]: privacy.ErasureAnswer(row["rows_erased"], row["completed_at"])
                   for row in await conn.fetch(
                       "SELECT service, rows_erased, completed_at FROM erasure_status WHERE erasure_id = $1",
                       erasure_id)}
        return privacy.Erasure(request["id"], list(request["lead_ids"]), request["requested_at"],
                               request["completed_at"], answers)
