"""Capture's use cases: plain functions over a session and the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_capture import domain
from leadflow_capture.tables import form as form_table
from leadflow_capture.tables import lead as lead_table
from leadflow_contracts import new_event
from leadflow_kit.errors import FieldError
from leadflow_kit.outbox import Outbox


class UnknownForm(LookupError):
    pass


class InvalidSubmission(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


async def load_form(session: AsyncSession, key: str) -> domain.FormDefinition:
    row = (await session.execute(select(form_table).where(form_table.c.key == key))).first()
    if row is None:
        raise UnknownForm(key)
    return domain.FormDefinition(
        key=row.key,
        name=row.name,
        field_mapping=dict(row.field_mapping),
        required_fields=tuple(row.required_fields),
        active=row.active,
    )


async def capture_submission(
    session: AsyncSession, outbox: Outbox, form_key: str, posted: dict[str, str], now: datetime
) -> str:
    """Store the lead and its ``lead.captured`` event in one transaction; returns the lead id."""
    form = await load_form(session, form_key)
    submission = domain.map_submission(form, posted)
    errors = domain.validate_submission(form, submission)
    if errors:
        raise InvalidSubmission(errors)
    lead_id = str(uuid.uuid4())
    await session.execute(
        insert(lead_table).values(
            id=lead_id,
            form_key=form.key,
            contact=submission.contact.model_dump(exclude_none=True),
            custom_fields=submission.custom_fields,
            attribution=submission.attribution.model_dump(exclude_none=True),
            submitted_at=now,
        )
    )
    data = domain.lead_captured(lead_id, form, submission, now)
    await outbox.add(session, new_event(data, source="capture", subject=lead_id, lead_captured_at=now, time=now))
    return lead_id
