"""Capture's use cases: a form fill, activity posts, erasure requests and the answers to them.

Each runs in a unit of work (one transaction, the outbox in it): the routes open one with
``unit_of_work``, the consumer opens one per batch. A use case decides with ``domain`` and reads and
writes only through ``uow.deps.store``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from leadflow_capture import domain
from leadflow_capture.bootstrap import Deps
from leadflow_capture.privacy import NewErasure
from leadflow_capture.store import RecentLead, StoredResponse
from leadflow_contracts import (
    Event,
    LeadActivity,
    LeadCaptured,
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
    """An Idempotency-Key as a request sent it: ``scope`` names what it keys, ``fingerprint`` the request,
    ``answer`` renders the response stored under it for an outcome (a retry gets it back)."""

    scope: str
    key: str
    fingerprint: str
    answer: Callable[[Outcome], StoredResponse]


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


# A fill's answer: its outcome, the answer stored for an earlier request with its Idempotency-Key, or why it
# was refused (InvalidSubmission, IdempotencyKeyReused; nothing was written for it).
FillAnswer = Outcome | StoredResponse | Exception


@dataclass
class _Fill:
    """A fill on its way through ``capture_form_fills``: what the checks that need no database made of it
    (with the lead it stores and the event announcing it, none when the event would be too large), and its
    answer once known."""

    fill: FormFill
    screened: domain.Submission | Outcome | InvalidSubmission
    lead: domain.NewLead | None = None
    event: Event[LeadCaptured] | None = None
    # The lock serializing fills of the lead's email on its form, when a repeat since ``since`` is a duplicate.
    lock_key: str | None = None
    since: datetime | None = None
    claimed: bool = False
    answer: FillAnswer | None = None


# -- form fills ---------------------------------------------------------------------------------


async def capture_form_fill(fill: FormFill, uow: UnitOfWork[Deps]) -> Outcome | StoredResponse:
    """The fill's outcome, or the answer stored for an earlier request with its Idempotency-Key; raises
    the refusal."""
    [answer] = await capture_form_fills([fill], uow)
    if isinstance(answer, Exception):
        raise answer
    return answer


async def capture_form_fills(fills: list[FormFill], uow: UnitOfWork[Deps]) -> list[FillAnswer]:
    """Each fill's answer, as if the fills were captured one after another in this transaction (a repeat of
    an email on a form is a duplicate of the fill before it), in a few statements for all of them.

    Spam is answered like an accepted fill (bots learn nothing) but nothing is stored or sent; a double
    submit returns the lead the first fill made; a fill an Idempotency-Key names again gets the answer stored
    under it. A refused fill is answered with its refusal and writes nothing, except that a refused fill with
    an Idempotency-Key raises it (the key's claim must roll back), and a form changed since it was remembered
    raises FormChanged: the caller then runs the fills one by one. Fills naming one key twice run in turns,
    so the second finds the first one's answer (as do fills with another double-submit window, rare as it is).
    """
    answers: list[FillAnswer] = []
    for turn in _turns(fills):
        answers += await _capture_together(turn, uow)
    return answers


def _turns(fills: list[FormFill]) -> list[list[FormFill]]:
    """The fills in order, cut wherever an Idempotency-Key comes again or the double-submit window changes."""
    turns: list[list[FormFill]] = [[]]
    keys: set[tuple[str, str]] = set()
    for fill in fills:
        claim = fill.idempotency
        named = None if claim is None else (claim.scope, claim.key)
        turn = turns[-1]
        if named in keys or (turn and turn[0].context.double_submit_window != fill.context.double_submit_window):
            turns.append([])
            keys.clear()
        if named is not None:
            keys.add(named)
        turns[-1].append(fill)
    return turns


async def _capture_together(fills: list[FormFill], uow: UnitOfWork[Deps]) -> list[FillAnswer]:
    # Everything that needs no database comes first: the transaction begins at the first statement, and
    # is open (a pooled connection idle in it) only while the statements run.
    now = uow.now()
    pending = [_prepare(fill, now) for fill in fills]
    await _lock_and_confirm_forms(pending, uow)
    for each in pending:
        if each.fill.idempotency is not None:
            await _claim(each, each.fill.idempotency, uow)
        elif not isinstance(each.screened, domain.Submission):
            each.answer = each.screened
    await _store_leads([each for each in pending if each.answer is None], uow)
    for each in pending:
        if each.claimed and isinstance(each.answer, Outcome) and each.fill.idempotency is not None:
            claim = each.fill.idempotency
            await uow.deps.store.save_idempotent_response(uow.session, claim.scope, claim.key,
                                                          claim.answer(each.answer))
    return [_answer(each) for each in pending]


def _answer(each: _Fill) -> FillAnswer:
    if each.answer is None:
        raise ValueError(f"form fill to {each.fill.form.key} left without an answer")
    return each.answer


def _prepare(fill: FormFill, now: datetime) -> _Fill:
    try:
        screened = _screen(fill.form, fill.posted, now, fill.context)
    except InvalidSubmission as refused:
        return _Fill(fill, refused)
    if isinstance(screened, Outcome):
        return _Fill(fill, screened)
    context = fill.context
    lead = domain.new_lead(str(uuid.uuid4()), fill.form, screened, now, context.ip, context.user_agent)
    data = domain.lead_captured(lead.id, fill.form, screened, now, lead.consent)
    # Too large: refused unless it is a double submit (which stores nothing); Kafka would refuse its event.
    event = None if len(data.model_dump_json().encode()) > MAX_EVENT_BYTES else new_event(
        data, source="capture", subject=lead.id, lead_captured_at=now, time=now)
    if not lead.email_normalized or context.double_submit_window <= timedelta(0):
        return _Fill(fill, screened, lead, event)
    return _Fill(fill, screened, lead, event, lock_key=f"capture:{lead.form_key}:{lead.email_normalized}",
                 since=now - context.double_submit_window)


async def _lock_and_confirm_forms(pending: list[_Fill], uow: UnitOfWork[Deps]) -> None:
    """Lock the fills' emails and check their remembered forms (FormChanged), in one statement.

    The lock serializes fills of one email on one form, so two racing double submits still make one lead;
    it names the email: fills of one form by different people never wait for each other (the form is read,
    not locked; see the store). The double-submit lookup that follows is a statement of its own: it must
    see what the locks waited for, and a statement sees only what had committed when it began.
    """
    lock_keys = [key for key in (each.lock_key for each in pending) if key is not None]
    remembered = [each.fill.form for each in pending if not each.fill.form_confirmed]
    if not lock_keys and not remembered:
        return
    current = await uow.deps.store.lock_and_read_forms(uow.session, lock_keys, [form.key for form in remembered])
    for form in remembered:
        _check_form(form, current[form.key])


async def _claim(each: _Fill, claim: IdempotencyClaim, uow: UnitOfWork[Deps]) -> None:
    """Claim the fill's key; its answer is then the one stored under the key (or the refusal of a reused key)."""
    try:
        stored = await claim_idempotency_key(claim, uow)
    except IdempotencyKeyReused as reused:
        each.answer = reused
        return
    if stored is not None:
        each.answer = stored
    elif isinstance(each.screened, InvalidSubmission):
        raise each.screened
    else:
        each.claimed = True
        if isinstance(each.screened, Outcome):
            each.answer = each.screened


async def _store_leads(pending: list[_Fill], uow: UnitOfWork[Deps]) -> None:
    """Store the leads of the fills that repeat no fill within their window and publish their events (one
    statement looks the repeats up and stores the rest); the others are duplicates of the latest lead of their
    email on their form.

    A turn's fills of one email share their window's start, so the first storable fill of an email stands for
    the later ones: it is stored unless an earlier lead is found, and they repeat it or that lead."""
    first_of_email: set[str] = set()
    batch: list[tuple[domain.NewLead, datetime | None, bool]] = []
    for each in pending:
        if each.lead is None:
            raise ValueError("only a screened fill has a lead to store")
        storable = each.event is not None and each.lock_key not in first_of_email
        if storable and each.lock_key is not None:
            first_of_email.add(each.lock_key)
        batch.append((each.lead, each.since, storable))
    found = await uow.deps.store.insert_leads_unless_recent(uow.session, batch)
    made: dict[str, RecentLead] = {}
    for each, (lead, _, _), stored in zip(pending, batch, found, strict=True):
        key = each.lock_key
        earlier = None if key is None or each.since is None else _latest(stored, made.get(key), each.since)
        if earlier is not None:
            each.answer = Outcome("duplicate", earlier)
        elif each.event is None:
            each.answer = _too_large(each)
        else:
            if key is not None:
                made[key] = RecentLead(lead.id, lead.submitted_at)
            each.answer = Outcome("accepted", lead.id)
            await uow.publish(each.event)


def _latest(stored: RecentLead | None, made: RecentLead | None, since: datetime) -> str | None:
    """The lead a fill repeats: of the one stored and the one this transaction made, the latest since ``since``."""
    found = [lead for lead in (made, stored) if lead is not None and lead.submitted_at >= since]
    return max(found, key=lambda lead: lead.submitted_at).id if found else None


def _too_large(each: _Fill) -> InvalidSubmission:
    refused = InvalidSubmission([FieldError(field="body", code="too_large",
                                            message=f"the fields add up to more than {MAX_EVENT_BYTES} bytes")])
    if each.fill.idempotency is not None:
        raise refused  # rolls the key's claim back with the rest of the transaction
    return refused


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
    [answer] = await record_activity_posts([activities], uow)
    if isinstance(answer, InvalidSubmission):
        raise answer
    return answer


async def record_activity_posts(posts: list[list[LeadActivity]], uow: UnitOfWork[Deps]
                                ) -> list[list[str] | InvalidSubmission]:
    """Each post's activity ids, as if the posts were recorded one after another in this transaction, in one
    insert for all of them: an activity id repeated, within a post or across posts, is stored and announced
    once, by its first. A post holding an activity too large for an event is refused alone (its answer is
    the refusal) and writes nothing."""
    answers: list[list[str] | InvalidSubmission] = []
    accepted: list[LeadActivity] = []
    for activities in posts:
        refusal = _oversized(activities)
        answers.append(refusal if refusal is not None else [a.activity_id for a in activities])
        if refusal is None:
            accepted += activities
    if not accepted:
        return answers
    inserted = await uow.deps.store.insert_activities(uow.session, accepted)
    for data in accepted:
        if data.activity_id in inserted:
            inserted.discard(data.activity_id)  # an id repeated in the batch was stored once, by its first
            await uow.publish(new_event(data, source="capture",
                                        subject=domain.activity_key(data, uow.deps.person_secret),
                                        time=data.occurred_at, event_id=data.activity_id))
    return answers


def _oversized(activities: list[LeadActivity]) -> InvalidSubmission | None:
    for index, data in enumerate(activities):
        if len(data.model_dump_json().encode()) > MAX_EVENT_BYTES:
            return InvalidSubmission([FieldError(field=f"activities.{index}", code="too_large",
                                                 message=f"the activity exceeds {MAX_EVENT_BYTES} bytes")])
    return None


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
    elif lead_ids:
        # Named by lead id alone, the person may already be gone from here (capture answers its own part as
        # soon as it reads the request) while other services still work on it: the open request that
        # names one of those leads is theirs.
        await store.lock(uow.session, "erasure-leads:" + min(lead_ids))
        open_request = await store.open_erasure_of_leads(uow.session, lead_ids)
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
