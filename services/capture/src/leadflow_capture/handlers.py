"""Capture's use cases: a form fill, activity posts, erasure requests and the answers to them.

Each runs in a unit of work (one transaction, the outbox in it): the routes open one with
``unit_of_work``, the consumer opens one per batch. A use case decides with ``domain`` and reads and
writes only through ``uow.deps.store``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from leadflow_capture import domain
from leadflow_capture.bootstrap import Deps
from leadflow_capture.privacy import NewErasure
from leadflow_capture.store import StoredResponse
from leadflow_contracts import (
    Event,
    LeadActivity,
    PrivacyErasureCompleted,
    PrivacyErasureRequested,
    new_event,
)
from leadflow_contracts.envelope import MAX_EVENT_BYTES
from leadflow_kit.consumer import UnitOfWork, one_at_a_time
from leadflow_kit.errors import FieldError


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
class IdempotencyClaim:
    """An Idempotency-Key as a request sent it: ``scope`` names what it keys, ``fingerprint`` the request."""

    scope: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class FormFill:
    form: domain.FormDefinition
    posted: Mapping[str, str]
    context: SubmissionContext = field(default_factory=SubmissionContext)
    # False: ``form`` was remembered from an earlier request; before any outcome it is checked against
    # the stored form in this transaction, and FormChanged is raised when they differ.
    form_confirmed: bool = True
    idempotency: IdempotencyClaim | None = None


@dataclass(frozen=True)
class Outcome:
    kind: Literal["accepted", "duplicate", "spam"]
    lead_id: str
    reason: str | None = None


# -- form fills ---------------------------------------------------------------------------------


async def capture_form_fill(fill: FormFill, uow: UnitOfWork[Deps]) -> Outcome | StoredResponse:
    """The fill's outcome, or the answer stored for an earlier request with its Idempotency-Key."""
    if fill.idempotency is None:
        return await capture_submission(fill, uow)
    # A replay answers for the form as it is now, so check it before the key.
    await confirm_form(None if fill.form_confirmed else fill.form, uow)
    stored = await claim_idempotency_key(fill.idempotency, uow)
    if stored is not None:
        return stored
    return await capture_submission(replace(fill, form_confirmed=True), uow)


async def capture_submission(fill: FormFill, uow: UnitOfWork[Deps]) -> Outcome:
    """Store the lead and its ``lead.captured`` event in one transaction.

    Spam is answered like an accepted fill (bots learn nothing) but nothing is stored or sent;
    a double submit returns the lead the first fill made.
    """
    form, context, now = fill.form, fill.context, uow.now()
    remembered = None if fill.form_confirmed else form
    try:
        screened = _screen(form, fill.posted, now, context)
    except InvalidSubmission:
        await confirm_form(remembered, uow)
        raise
    if isinstance(screened, Outcome):
        await confirm_form(remembered, uow)
        return screened
    lead = domain.new_lead(str(uuid.uuid4()), form, screened, now, context.ip, context.user_agent)
    earlier = await _store_lead(lead, remembered, context.double_submit_window, uow)
    if earlier is not None:
        return Outcome("duplicate", earlier)
    data = domain.lead_captured(lead.id, form, screened, now, lead.consent)
    if len(data.model_dump_json().encode()) > MAX_EVENT_BYTES:
        # Rolls the lead back with the rest of the transaction: an event Kafka would refuse must not be stored.
        raise InvalidSubmission([FieldError(field="body", code="too_large",
                                            message=f"the fields add up to more than {MAX_EVENT_BYTES} bytes")])
    await uow.publish(new_event(data, source="capture", subject=lead.id, lead_captured_at=now, time=now))
    return Outcome("accepted", lead.id)


async def _store_lead(lead: domain.NewLead, remembered: domain.FormDefinition | None, window: timedelta,
                      uow: UnitOfWork[Deps]) -> str | None:
    """Store the lead, unless it repeats a fill within ``window``: then the id of the lead that fill made."""
    store = uow.deps.store
    if lead.email_normalized and window > timedelta(0):
        # Serialize fills of one email on one form, so two racing double-submits still make one lead;
        # it is the one lock a fill takes, and it names the email: fills of one form by different people
        # never wait for each other (the form is read, not locked; see the store). The lock is its own
        # statement: the double-submit check must see what the lock waited for, and a statement sees
        # only what had committed when it began.
        lock_key = f"capture:{lead.form_key}:{lead.email_normalized}"
        if remembered is None:
            await store.lock(uow.session, lock_key)
        else:
            _check_form(remembered, await store.lock_and_read_form(uow.session, lead.form_key, lock_key))
        return await store.insert_lead_unless_recent(uow.session, lead, lead.submitted_at - window)
    await confirm_form(remembered, uow)
    await store.insert_lead(uow.session, lead)
    return None


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


async def confirm_form(remembered: domain.FormDefinition | None, uow: UnitOfWork[Deps]) -> None:
    """Raise :class:`FormChanged` unless ``remembered`` is still the stored form; None: nothing to check."""
    if remembered is not None:
        _check_form(remembered, await uow.deps.store.current_form(uow.session, remembered.key))


def _check_form(remembered: domain.FormDefinition, current: domain.FormDefinition | None) -> None:
    if current != remembered:
        raise FormChanged(current)


async def claim_idempotency_key(claim: IdempotencyClaim, uow: UnitOfWork[Deps]) -> StoredResponse | None:
    """Claim the key for this transaction, or return the response stored under it.

    A concurrent request with the same key waits on the unique index until the first one
    commits (then replays its response) or rolls back (then takes the key itself).
    """
    store = uow.deps.store
    if await store.claim_idempotency_key(uow.session, claim.scope, claim.key, claim.fingerprint):
        return None
    # A statement of its own: only a new snapshot sees the row the insert waited for.
    record = await store.idempotency_record(uow.session, claim.scope, claim.key)
    if record is None:
        raise LookupError(f"idempotency key {claim.key} vanished while claimed")
    if record.fingerprint != claim.fingerprint:
        raise IdempotencyKeyReused(claim.key)
    return record.response


# -- activities ---------------------------------------------------------------------------------


async def record_activities(activities: list[LeadActivity], uow: UnitOfWork[Deps]) -> list[str]:
    """Store each activity and its ``lead.activity`` event; a retried activity id is recorded once."""
    for index, data in enumerate(activities):
        if len(data.model_dump_json().encode()) > MAX_EVENT_BYTES:
            raise InvalidSubmission([FieldError(field=f"activities.{index}", code="too_large",
                                                message=f"the activity exceeds {MAX_EVENT_BYTES} bytes")])
    inserted = await uow.deps.store.insert_activities(uow.session, activities)
    for data in activities:
        if data.activity_id in inserted:
            inserted.discard(data.activity_id)  # an id repeated in the batch was stored once, by its first
            await uow.publish(new_event(data, source="capture",
                                        subject=domain.activity_key(data, uow.deps.person_secret),
                                        time=data.occurred_at, event_id=data.activity_id))
    return [a.activity_id for a in activities]


# -- data-subject requests ----------------------------------------------------------------------


async def request_erasure(email: str | None, lead_ids: list[str], uow: UnitOfWork[Deps]) -> str:
    """Record the request and announce it; an open request for the same person is returned instead."""
    store = uow.deps.store
    person = await store.find_person(uow.session, email, lead_ids)
    person_key = domain.person_key(person.email, uow.deps.person_secret) if person.email else None
    if person_key is not None:
        # Serializes two requests for one person, so the second finds the first.
        await store.lock(uow.session, person_key)
        open_request = await store.open_erasure(uow.session, person_key)
        if open_request is not None:
            return open_request
    now = uow.now()
    erasure = NewErasure(str(uuid.uuid4()), person_key, person.lead_ids, now)
    await store.add_erasure(uow.session, erasure)
    requested = PrivacyErasureRequested(erasure_id=erasure.erasure_id, email=person.email,
                                        lead_ids=person.lead_ids, requested_at=now)
    await uow.publish(new_event(requested, source="capture", subject=erasure.erasure_id, time=now))
    return erasure.erasure_id


async def record_erasure_answers(events: list[Event[PrivacyErasureCompleted]], uow: UnitOfWork[Deps]) -> None:
    """Each service's answer; a request is complete once every service answered."""
    for event in one_at_a_time(events):
        await uow.deps.store.record_erasure_answer(uow.session, event.data, uow.now())
