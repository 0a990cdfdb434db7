"""An in-memory ``CaptureStore`` and the ``Deps`` around it, for handler tests without a database.

The fake subclasses the real store, so mypy keeps its methods' signatures in step; each method does in
dicts what the real one's SQL does in PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_capture import privacy
from leadflow_capture.bootstrap import Deps, bootstrap
from leadflow_capture.domain import FormDefinition, NewLead, Person, StoredForm
from leadflow_capture.schemas import FormCreate
from leadflow_capture.settings import Settings
from leadflow_capture.store import CaptureStore, IdempotencyRecord, RecentLead, StoredResponse
from leadflow_contracts import LeadActivity, PrivacyErasureCompleted

# What an idempotency key holds between its claim and the answer stored under it.
UNANSWERED = StoredResponse(0, {}, "")


class FakeCaptureStore(CaptureStore):
    def __init__(self) -> None:
        self.forms: dict[str, StoredForm] = {}
        self.leads: dict[str, NewLead] = {}
        self.locks: list[str] = []
        self.idempotency: dict[tuple[str, str], IdempotencyRecord] = {}
        self.activities: dict[str, LeadActivity] = {}
        self.erasures: dict[str, privacy.NewErasure] = {}
        self.erasures_completed: dict[str, datetime] = {}
        self.answers: dict[str, dict[str, privacy.ErasureAnswer]] = {}

    def add_form(self, form: FormDefinition, at: datetime) -> FormDefinition:
        self.forms[form.key] = StoredForm(form, at, at)
        return form

    # -- forms -----------------------------------------------------------------------------------

    async def current_form(self, session: AsyncSession, key: str) -> FormDefinition | None:
        stored = self.forms.get(key)
        return stored.definition if stored is not None else None

    async def lock(self, session: AsyncSession, key: str) -> None:
        self.locks.append(key)

    async def lock_and_read_forms(self, session: AsyncSession, lock_keys: list[str],
                                  form_keys: list[str]) -> dict[str, FormDefinition | None]:
        self.locks += sorted(set(lock_keys))
        return {key: await self.current_form(session, key) for key in form_keys}

    async def list_forms(self, session: AsyncSession, status: str | None = None) -> list[StoredForm]:
        return [stored for key, stored in sorted(self.forms.items())
                if status is None or (status == "archived") == stored.definition.archived]

    async def get_form(self, session: AsyncSession, key: str) -> StoredForm | None:
        return self.forms.get(key)

    async def create_form(self, session: AsyncSession, body: FormCreate, now: datetime) -> StoredForm | None:
        if body.key in self.forms:
            return None
        values = body.model_dump()
        form = FormDefinition(**{**values, "required_fields": tuple(values["required_fields"]),
                                 "allowed_origins": tuple(values["allowed_origins"])})
        self.forms[form.key] = StoredForm(form, now, now)
        return self.forms[form.key]

    async def update_form(
        self, session: AsyncSession, key: str, changes: Mapping[str, Any], now: datetime
    ) -> StoredForm | None:
        stored = self.forms.get(key)
        if stored is None:
            return None
        tuples = {name: tuple(value) for name, value in changes.items()
                  if name in ("required_fields", "allowed_origins")}
        form = dataclasses.replace(stored.definition, **{**changes, **tuples})
        self.forms[key] = StoredForm(form, stored.created_at, now)
        return self.forms[key]

    async def seed_demo_form(self, session: AsyncSession) -> None:
        self.forms.setdefault("demo", StoredForm(FormDefinition("demo", "Demo request", allowed_origins=("*",)),
                                                 datetime.min, datetime.min))

    # -- leads -----------------------------------------------------------------------------------

    async def insert_leads_unless_recent(
        self, session: AsyncSession, leads: list[tuple[NewLead, datetime | None, bool]]
    ) -> list[RecentLead | None]:
        # Every lookup sees the leads as they were before the statement, as PostgreSQL's do.
        found = [None if since is None else self._latest(lead, since) for lead, since, _ in leads]
        for (lead, _, storable), earlier in zip(leads, found, strict=True):
            if storable and earlier is None:
                self.leads[lead.id] = lead
        return found

    def _latest(self, lead: NewLead, since: datetime) -> RecentLead | None:
        recent = [earlier for earlier in self.leads.values()
                  if earlier.form_key == lead.form_key and earlier.email_normalized == lead.email_normalized
                  and earlier.submitted_at >= since]
        latest = max(recent, key=lambda earlier: earlier.submitted_at) if recent else None
        return RecentLead(latest.id, latest.submitted_at) if latest is not None else None

    # -- idempotency keys ------------------------------------------------------------------------

    async def claim_idempotency_key(self, session: AsyncSession, scope: str, key: str, fingerprint: str) -> bool:
        if (scope, key) in self.idempotency:
            return False
        self.idempotency[(scope, key)] = IdempotencyRecord(fingerprint, UNANSWERED)
        return True

    async def idempotency_record(self, session: AsyncSession, scope: str, key: str) -> IdempotencyRecord | None:
        return self.idempotency.get((scope, key))

    async def save_idempotent_response(
        self, session: AsyncSession, scope: str, key: str, response: StoredResponse
    ) -> None:
        claimed = self.idempotency[(scope, key)]
        self.idempotency[(scope, key)] = IdempotencyRecord(claimed.fingerprint, response)

    # -- activities ------------------------------------------------------------------------------

    async def insert_activities(self, session: AsyncSession, activities: list[LeadActivity]) -> set[str]:
        inserted: set[str] = set()
        for activity in activities:
            if activity.activity_id not in self.activities:
                self.activities[activity.activity_id] = activity
                inserted.add(activity.activity_id)
        return inserted

    # -- data-subject requests -------------------------------------------------------------------

    async def find_person(self, session: AsyncSession, email: str | None, lead_ids: list[str]) -> Person:
        by_time = sorted(self.leads.values(), key=lambda lead: lead.submitted_at)
        if email is None:
            email = next((lead.email_normalized for lead in by_time
                          if lead.id in lead_ids and lead.email_normalized is not None), None)
        found = list(dict.fromkeys(lead_ids))
        if email is not None:
            found += [lead.id for lead in by_time if lead.email_normalized == email and lead.id not in found]
        return Person(email, found)

    async def export_person(self, session: AsyncSession, person: Person) -> dict[str, Any]:
        return {"service": "capture", "lead_ids": person.lead_ids,
                "tables": {"lead": [lead.id for lead in self.leads.values() if lead.id in person.lead_ids]}}

    async def open_erasure(self, session: AsyncSession, person_key: str) -> str | None:
        return next((erasure.erasure_id for erasure in self.erasures.values()
                     if erasure.person_key == person_key and erasure.erasure_id not in self.erasures_completed), None)

    async def add_erasure(self, session: AsyncSession, erasure: privacy.NewErasure) -> None:
        self.erasures[erasure.erasure_id] = erasure

    async def record_erasure_answer(
        self, session: AsyncSession, answer: PrivacyErasureCompleted, now: datetime
    ) -> None:
        if answer.erasure_id not in self.erasures:
            return
        answers = self.answers.setdefault(answer.erasure_id, {})
        answers.setdefault(answer.service, privacy.ErasureAnswer(answer.rows_erased, answer.completed_at))
        if set(privacy.SERVICES) <= set(answers):
            self.erasures_completed.setdefault(answer.erasure_id, now)

    async def erasure(self, session: AsyncSession, erasure_id: str) -> privacy.Erasure | None:
        request = self.erasures.get(erasure_id)
        if request is None:
            return None
        return privacy.Erasure(erasure_id, request.lead_ids, request.requested_at,
                               self.erasures_completed.get(erasure_id), dict(self.answers.get(erasure_id, {})))


def fake_deps(store: FakeCaptureStore | None = None, **settings: Any) -> Deps:
    """Capture's dependencies over an in-memory store; nothing connects."""
    deps = bootstrap(Settings(environment="test", **settings))
    return dataclasses.replace(deps, store=store or FakeCaptureStore())
