"""Capture's use cases against the in-memory store: a form fill accepted, deduplicated, refused or
dropped as spam; activities stored and published once; erasure requests recorded and completed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_capture import domain, handlers, privacy
from leadflow_capture.domain import FormDefinition
from leadflow_capture.handlers import FormFill, IdempotencyClaim, SubmissionContext
from leadflow_capture.store import RecentLead, StoredResponse
from leadflow_contracts import Event, LeadActivity, LeadCaptured, PrivacyErasureCompleted, new_event
from leadflow_kit.fakes import fake_unit_of_work

from .fakes import FakeCaptureStore, fake_deps

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FORM = FormDefinition("demo-request", "Demo request", field_mapping={"work_email": "email"},
                      allowed_origins=("*",), consent_text="Yes, contact me", consent_version="v1")


Filled = tuple[handlers.Outcome | StoredResponse, list[Event[LeadCaptured]]]


async def fill(store: FakeCaptureStore, posted: dict[str, str], *, at: datetime = NOW, form: FormDefinition = FORM,
               context: SubmissionContext | None = None, confirmed: bool = True,
               claim: IdempotencyClaim | None = None) -> Filled:
    """One form fill in a unit of work of its own at ``at``; its outcome and what it published."""
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), at)
    outcome = await handlers.capture_form_fill(
        FormFill(form, posted, context or SubmissionContext(), form_confirmed=confirmed, idempotency=claim), uow)
    return outcome, outbox.events


@pytest.fixture
def store() -> FakeCaptureStore:
    store = FakeCaptureStore()
    store.add_form(FORM, NOW - timedelta(days=1))
    return store


async def test_a_valid_fill_is_stored_and_announced_as_lead_captured(store):
    outcome, events = await fill(store, {"work_email": "Ada@Example.com", "utm_source": "newsletter"})

    assert isinstance(outcome, handlers.Outcome) and outcome.kind == "accepted"
    lead = store.leads[outcome.lead_id]
    assert (lead.form_key, lead.email_normalized, lead.submitted_at) == (FORM.key, "ada@example.com", NOW)
    [event] = events
    assert (event.type, event.subject, event.lead_captured_at) == ("lead.captured.v1", outcome.lead_id, NOW)
    assert event.data.contact.email == "Ada@Example.com"
    assert event.data.attribution.utm_source == "newsletter"


async def test_a_repeat_fill_of_the_same_email_within_the_window_returns_the_first_lead(store):
    first, _ = await fill(store, {"work_email": "ada@example.com"})
    again, events = await fill(store, {"work_email": " ADA@example.com "}, at=NOW + timedelta(minutes=9))

    assert isinstance(first, handlers.Outcome) and isinstance(again, handlers.Outcome)
    assert (again.kind, again.lead_id) == ("duplicate", first.lead_id)
    assert events == []
    assert list(store.leads) == [first.lead_id]


async def test_a_repeat_fill_after_the_window_is_a_new_lead(store):
    first, _ = await fill(store, {"work_email": "ada@example.com"})
    later, events = await fill(store, {"work_email": "ada@example.com"}, at=NOW + timedelta(minutes=11))

    assert isinstance(first, handlers.Outcome) and isinstance(later, handlers.Outcome)
    assert later.kind == "accepted" and later.lead_id != first.lead_id
    assert len(events) == 1 and len(store.leads) == 2


async def test_fills_of_one_email_on_one_form_are_serialized_by_a_lock(store):
    await fill(store, {"work_email": "Ada@example.com"})

    assert store.locks == [f"capture:{FORM.key}:ada@example.com"]


async def test_without_a_double_submit_window_every_fill_is_a_new_lead(store):
    no_window = SubmissionContext(double_submit_window=timedelta(0))
    for _ in range(2):
        outcome, _ = await fill(store, {"work_email": "ada@example.com"}, context=no_window)
        assert isinstance(outcome, handlers.Outcome) and outcome.kind == "accepted"

    assert len(store.leads) == 2 and store.locks == []


async def test_a_honeypot_fill_is_answered_as_accepted_but_nothing_is_stored_or_sent(store):
    outcome, events = await fill(store, {"work_email": "bot@example.com", "_hp": "http://spam.example"})

    assert isinstance(outcome, handlers.Outcome)
    assert (outcome.kind, outcome.reason) == ("spam", "honeypot")
    assert store.leads == {} and events == []


async def test_a_fill_sent_sooner_than_the_minimum_fill_time_is_spam(store):
    quick = store.add_form(dataclasses.replace(FORM, key="quick", min_fill_seconds=5), NOW)
    rendered = int((NOW - timedelta(seconds=2)).timestamp() * 1000)

    outcome, events = await fill(store, {"work_email": "fast@example.com", "_rendered_at": str(rendered)}, form=quick)

    assert isinstance(outcome, handlers.Outcome)
    assert (outcome.kind, outcome.reason) == ("spam", "filled_too_fast")
    assert store.leads == {} and events == []


async def test_a_fill_missing_a_required_field_is_refused_with_the_field_the_page_named(store):
    with pytest.raises(handlers.InvalidSubmission) as refused:
        await fill(store, {"first_name": "Ada"})

    assert [(e.field, e.code) for e in refused.value.errors] == [("work_email", "required")]
    assert store.leads == {}


async def test_a_form_requiring_consent_refuses_a_fill_without_it_and_records_it_when_given(store):
    consenting = store.add_form(dataclasses.replace(FORM, key="consent", consent_required=True), NOW)
    with pytest.raises(handlers.InvalidSubmission) as refused:
        await fill(store, {"work_email": "ada@example.com"}, form=consenting)
    assert refused.value.errors[0].code == "consent_required"

    outcome, [event] = await fill(store, {"work_email": "ada@example.com", "consent": "yes"}, form=consenting,
                                  context=SubmissionContext(ip="203.0.113.7"))

    assert isinstance(outcome, handlers.Outcome)
    consent = store.leads[outcome.lead_id].consent
    assert consent is not None and (consent.text_version, consent.given_at, consent.ip) == ("v1", NOW, "203.0.113.7")
    assert event.data.consent == consent


async def test_fields_adding_up_to_more_than_an_event_holds_are_refused(store):
    roomy = SubmissionContext(limits=domain.Limits(max_field_length=10_000))
    posted = {"work_email": "ada@example.com", **{f"note_{i}": "x" * 9_000 for i in range(8)}}

    with pytest.raises(handlers.InvalidSubmission) as refused:
        await fill(store, posted, context=roomy)

    assert refused.value.errors[0].code == "too_large"


async def test_the_page_a_browser_posted_from_fills_the_attribution(store):
    page = SubmissionContext(page_url="https://www.example.com/demo?utm_source=ads&gclid=g-1")

    _, [event] = await fill(store, {"work_email": "ada@example.com"}, context=page)

    attribution = event.data.attribution
    assert (attribution.landing_page, attribution.utm_source, attribution.gclid) == (
        "https://www.example.com/demo?utm_source=ads&gclid=g-1", "ads", "g-1")


async def test_a_remembered_form_changed_since_is_reported_with_the_form_as_it_is_now(store):
    renamed = dataclasses.replace(FORM, honeypot_field="website")
    await store.update_form(None, FORM.key, {"honeypot_field": "website"}, NOW)  # type: ignore[arg-type]

    with pytest.raises(handlers.FormChanged) as changed:
        await fill(store, {"work_email": "ada@example.com"}, confirmed=False)

    assert changed.value.current == renamed
    assert store.leads == {}


async def test_a_remembered_form_removed_since_is_reported_as_gone(store):
    del store.forms[FORM.key]

    with pytest.raises(handlers.FormChanged) as changed:
        await fill(store, {"first_name": "no email"}, confirmed=False)

    assert changed.value.current is None


async def test_a_remembered_form_still_stored_takes_the_fill(store):
    outcome, events = await fill(store, {"work_email": "ada@example.com"}, confirmed=False)

    assert isinstance(outcome, handlers.Outcome) and outcome.kind == "accepted" and len(events) == 1


def json_answer(outcome: handlers.Outcome) -> StoredResponse:
    return StoredResponse(202, {"content-type": "application/json"}, f'{{"lead_id":"{outcome.lead_id}"}}')


def keyed(key: str, fingerprint: str, scope: str = f"submission:{FORM.key}") -> IdempotencyClaim:
    return IdempotencyClaim(scope, key, fingerprint, json_answer)


async def test_a_retry_with_the_same_idempotency_key_replays_the_first_answer(store):
    first, _ = await fill(store, {"work_email": "ada@example.com"}, claim=keyed("key-1", "fingerprint-a"))
    assert isinstance(first, handlers.Outcome)

    replayed, events = await fill(store, {"work_email": "ada@example.com"}, claim=keyed("key-1", "fingerprint-a"))

    assert replayed == json_answer(first)
    assert events == [] and len(store.leads) == 1


async def test_an_idempotency_key_sent_again_with_another_request_is_refused(store):
    await fill(store, {"work_email": "ada@example.com"}, claim=keyed("key-1", "a", "submission:x"))

    with pytest.raises(handlers.IdempotencyKeyReused):
        await fill(store, {"work_email": "eve@example.com"}, claim=keyed("key-1", "b", "submission:x"))


async def test_a_refused_fill_with_an_idempotency_key_raises_so_its_claim_rolls_back(store):
    with pytest.raises(handlers.InvalidSubmission):
        await fill(store, {"first_name": "no email"}, claim=keyed("key-1", "a"))


async def test_a_retried_idempotency_key_among_fills_stored_together_gets_the_first_fills_answer(store):
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)
    fills = [FormFill(FORM, {"work_email": "ada@example.com"}, idempotency=keyed("key-1", "a")),
             FormFill(FORM, {"work_email": "ada@example.com"}, idempotency=keyed("key-1", "a")),
             FormFill(FORM, {"work_email": "eve@example.com"}, idempotency=keyed("key-1", "b"))]

    first, again, reused = await handlers.capture_form_fills(fills, uow)

    assert isinstance(first, handlers.Outcome) and first.kind == "accepted"
    assert again == json_answer(first)
    assert isinstance(reused, handlers.IdempotencyKeyReused)
    assert list(store.leads) == [first.lead_id] and len(outbox.events) == 1


# Fills of every kind: new, repeated within the fills and after a stored one, spam, refused, too large (and then
# sent again smaller), without an email, on another form, and a repeat outside the window.
MIXED = [
    ({"work_email": "ada@example.com"}, FORM.key),
    ({"work_email": " ADA@example.com", "company": "Engines"}, FORM.key),
    ({"work_email": "stored@example.com"}, FORM.key),
    ({"work_email": "bot@example.com", "_hp": "http://spam.example"}, FORM.key),
    ({"first_name": "no email", "phone": "+44 20 7946 0000"}, "other"),
    ({"work_email": "huge@example.com", **{f"note_{i}": "x" * 9_000 for i in range(8)}}, FORM.key),
    ({"email": "ada@example.com"}, "other"),
    ({"work_email": "old@example.com"}, FORM.key),
    ({"work_email": "ada@example.com"}, FORM.key),
    ({"first_name": "Ada"}, FORM.key),
    ({"work_email": "huge@example.com"}, FORM.key),
]


OTHER = dataclasses.replace(FORM, key="other", field_mapping={}, required_fields=())


async def mixed_store() -> FakeCaptureStore:
    store = FakeCaptureStore()
    store.add_form(FORM, NOW - timedelta(days=1))
    store.add_form(OTHER, NOW - timedelta(days=1))
    earlier = (("stored@example.com", NOW - timedelta(minutes=5)), ("old@example.com", NOW - timedelta(hours=1)))
    for email, at in earlier:
        uow, _, _ = fake_unit_of_work(fake_deps(store), at)
        await handlers.capture_form_fill(FormFill(FORM, {"work_email": email}), uow)
    return store


def mixed_fills() -> list[FormFill]:
    roomy = SubmissionContext(limits=domain.Limits(max_field_length=10_000))
    return [FormFill(FORM if key == FORM.key else OTHER, posted, roomy, form_confirmed=False)
            for posted, key in MIXED]


def as_positions(answers: list[object], store: FakeCaptureStore, events: list[Event[LeadCaptured]],
                 before: dict[str, str | None]) -> tuple[list[object], list[int], list[int]]:
    """Answers, stored leads and events with each new lead id replaced by the position of the fill that made it
    and each earlier lead's by its email (ids are random): what one run and another must have in common."""
    made = {answer.lead_id: n for n, answer in enumerate(answers)
            if isinstance(answer, handlers.Outcome) and answer.kind == "accepted"}

    def plain(answer: object) -> object:
        if isinstance(answer, handlers.Outcome):
            return answer.kind, made.get(answer.lead_id, before.get(answer.lead_id, ""))
        return type(answer).__name__, [(e.field, e.code) for e in getattr(answer, "errors", [])]

    return ([plain(answer) for answer in answers], sorted(made[lead] for lead in store.leads if lead not in before),
            [made[event.subject] for event in events])


def emails(store: FakeCaptureStore) -> dict[str, str | None]:
    return {lead.id: lead.email_normalized for lead in store.leads.values()}


async def test_fills_stored_together_get_exactly_what_they_got_one_after_another():
    one_by_one, together = await mixed_store(), await mixed_store()
    before = emails(one_by_one)
    uow, outbox, _ = fake_unit_of_work(fake_deps(one_by_one), NOW)
    answers: list[object] = []
    for each in mixed_fills():
        try:
            answers.append(await handlers.capture_form_fill(each, uow))
        except handlers.InvalidSubmission as refused:
            answers.append(refused)
    expected = as_positions(answers, one_by_one, outbox.events, before)
    uow, outbox, _ = fake_unit_of_work(fake_deps(together), NOW)
    before = emails(together)
    together.locks.clear()

    got = as_positions(list(await handlers.capture_form_fills(mixed_fills(), uow)), together, outbox.events, before)

    assert got == expected
    kinds = [kind for kind, _ in got[0]]
    assert kinds == ["accepted", "duplicate", "duplicate", "spam", "accepted", "InvalidSubmission", "accepted",
                     "accepted", "duplicate", "InvalidSubmission", "accepted"]
    assert got[0][1] == got[0][8] == ("duplicate", 0) and got[0][2] == ("duplicate", "stored@example.com")
    assert got[1] == got[2] == [0, 4, 6, 7, 10]
    assert together.locks == sorted({"capture:demo-request:ada@example.com", "capture:demo-request:huge@example.com",
                                     "capture:demo-request:old@example.com", "capture:demo-request:stored@example.com",
                                     "capture:other:ada@example.com"})


class StepsStore(FakeCaptureStore):
    """Notes each round trip a fill's capture makes, in ``steps`` (which the test shares)."""

    def __init__(self, steps: list[str]) -> None:
        super().__init__()
        self.steps = steps

    async def lock_and_read_forms(self, session: AsyncSession, lock_keys: list[str],
                                  form_keys: list[str]) -> dict[str, FormDefinition | None]:
        self.steps.append("lock and read forms")
        return await super().lock_and_read_forms(session, lock_keys, form_keys)

    async def insert_leads_unless_recent(
        self, session: AsyncSession, leads: list[tuple[domain.NewLead, datetime | None, bool]]
    ) -> list[RecentLead | None]:
        self.steps.append("store leads unless repeated")
        return await super().insert_leads_unless_recent(session, leads)


async def test_fills_are_checked_and_their_leads_and_events_made_before_the_first_statement(monkeypatch):
    """The transaction begins at its first statement: the Python work of a group comes before it, so its
    connection does not sit idle in the transaction meanwhile."""
    steps: list[str] = []
    store = StepsStore(steps)
    store.add_form(FORM, NOW - timedelta(days=1))
    made = domain.lead_captured

    def lead_captured(*args: Any, **kwargs: Any) -> LeadCaptured:
        steps.append("make event")
        return made(*args, **kwargs)

    monkeypatch.setattr(domain, "lead_captured", lead_captured)
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)

    await handlers.capture_form_fills([FormFill(FORM, {"work_email": f"p{n}@example.com"}, form_confirmed=False)
                                       for n in range(3)], uow)

    assert steps == ["make event"] * 3 + ["lock and read forms", "store leads unless repeated"]
    assert len(outbox.events) == 3


def activity(activity_id: str, **who: str) -> LeadActivity:
    return LeadActivity(activity_id=activity_id, activity_type="page_view", occurred_at=NOW, **who)


async def test_activities_are_stored_and_an_id_repeated_in_a_batch_is_published_once():
    store = FakeCaptureStore()
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)

    ids = await handlers.record_activities([activity("a-1", visitor_id="v-1"), activity("a-1", visitor_id="v-1"),
                                            activity("a-2", lead_id="lead-7")], uow)

    assert ids == ["a-1", "a-1", "a-2"]
    assert [(e.id, e.subject, e.type) for e in outbox.events] == [
        ("a-1", "v-1", "lead.activity.v1"), ("a-2", "lead-7", "lead.activity.v1")]
    assert set(store.activities) == {"a-1", "a-2"}


async def test_an_activity_recorded_before_is_not_published_again():
    store = FakeCaptureStore()
    deps = fake_deps(store)
    await handlers.record_activities([activity("a-1", visitor_id="v-1")], fake_unit_of_work(deps, NOW)[0])
    uow, outbox, _ = fake_unit_of_work(deps, NOW)

    assert await handlers.record_activities([activity("a-1", visitor_id="v-1")], uow) == ["a-1"]
    assert outbox.events == []


async def test_an_activity_of_a_person_known_only_by_email_is_keyed_by_an_opaque_id():
    deps = fake_deps()
    uow, outbox, _ = fake_unit_of_work(deps, NOW)

    await handlers.record_activities([activity("a-1", email="ada@example.com")], uow)

    [event] = outbox.events
    assert event.subject == domain.person_key("ada@example.com", deps.person_secret)
    assert "ada" not in event.subject


async def test_an_activity_too_large_for_an_event_is_refused_and_nothing_is_stored():
    store = FakeCaptureStore()
    huge = activity("a-1", visitor_id="v-1").model_copy(update={"properties": {"blob": "x" * 70_000}})

    with pytest.raises(handlers.InvalidSubmission) as refused:
        await handlers.record_activities([huge], fake_unit_of_work(fake_deps(store), NOW)[0])

    assert refused.value.errors[0].field == "activities.0"
    assert store.activities == {}


async def test_posts_recorded_together_answer_as_one_after_another_in_one_insert():
    store = FakeCaptureStore()
    calls: list[int] = []
    insert = store.insert_activities

    async def counted(session: Any, activities: list[LeadActivity]) -> set[str]:
        calls.append(len(activities))
        return await insert(session, activities)

    store.insert_activities = counted  # type: ignore[method-assign]
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)
    huge = activity("a-9", visitor_id="v-9").model_copy(update={"properties": {"blob": "x" * 70_000}})

    answers = await handlers.record_activity_posts([
        [activity("a-1", visitor_id="v-1"), activity("a-2", visitor_id="v-1")],
        [activity("a-3", visitor_id="v-2"), huge],
        [activity("a-2", visitor_id="v-1"), activity("a-4", lead_id="lead-7")],  # a-2 retried by another post
    ], uow)

    assert answers[0] == ["a-1", "a-2"] and answers[2] == ["a-2", "a-4"]
    assert isinstance(answers[1], handlers.InvalidSubmission) and answers[1].errors[0].field == "activities.1"
    assert calls == [4], "the accepted posts' activities in one insert"
    assert [e.id for e in outbox.events] == ["a-1", "a-2", "a-4"], "each id announced once, by its first"
    assert set(store.activities) == {"a-1", "a-2", "a-4"}, "the refused post wrote nothing"


async def people(store: FakeCaptureStore) -> list[str]:
    """Two fills by Ada (on two forms) and one by Bob; returns the lead ids in that order."""
    ids = []
    for form_key, email, minutes in (("a", "ada@example.com", 0), ("b", "ada@example.com", 1),
                                     ("a", "bob@example.com", 2)):
        uow, _, _ = fake_unit_of_work(fake_deps(store), NOW + timedelta(minutes=minutes))
        outcome = await handlers.capture_form_fill(
            FormFill(dataclasses.replace(FORM, key=form_key), {"work_email": email}), uow)
        assert isinstance(outcome, handlers.Outcome)
        ids.append(outcome.lead_id)
    return ids


async def test_an_erasure_by_email_names_every_lead_of_the_person_and_is_announced():
    store = FakeCaptureStore()
    ada_a, ada_b, _ = await people(store)
    uow, outbox, _ = fake_unit_of_work(fake_deps(store), NOW)

    erasure_id = await handlers.request_erasure("ada@example.com", [], uow)

    assert store.erasures[erasure_id].lead_ids == [ada_a, ada_b]
    [event] = outbox.events
    assert (event.type, event.subject) == ("privacy.erasure_requested.v1", erasure_id)
    assert (event.data.email, event.data.lead_ids) == ("ada@example.com", [ada_a, ada_b])


async def test_an_erasure_by_one_lead_id_finds_the_persons_other_fills():
    store = FakeCaptureStore()
    ada_a, ada_b, _ = await people(store)
    uow, _, _ = fake_unit_of_work(fake_deps(store), NOW)

    erasure_id = await handlers.request_erasure(None, [ada_b], uow)

    assert store.erasures[erasure_id].lead_ids == [ada_b, ada_a]


async def test_asking_again_while_a_request_is_open_returns_it_and_announces_nothing():
    store = FakeCaptureStore()
    await people(store)
    deps = fake_deps(store)
    first = await handlers.request_erasure("ada@example.com", [], fake_unit_of_work(deps, NOW)[0])
    uow, outbox, _ = fake_unit_of_work(deps, NOW)

    assert await handlers.request_erasure("ada@example.com", [], uow) == first
    assert outbox.events == [] and len(store.erasures) == 1


async def test_an_erasure_completes_once_every_service_answered():
    store = FakeCaptureStore()
    await people(store)
    deps = fake_deps(store)
    erasure_id = await handlers.request_erasure("ada@example.com", [], fake_unit_of_work(deps, NOW)[0])

    def answer(service: str) -> Event[PrivacyErasureCompleted]:
        done = PrivacyErasureCompleted(erasure_id=erasure_id, service=service, rows_erased=2, completed_at=NOW)
        return new_event(done, source=service, subject=erasure_id)

    done_at = NOW + timedelta(seconds=3)
    await handlers.record_erasure_answers([answer(s) for s in privacy.SERVICES[:-1]],
                                          fake_unit_of_work(deps, done_at)[0])
    assert erasure_id not in store.erasures_completed
    await handlers.record_erasure_answers([answer(privacy.SERVICES[-1])], fake_unit_of_work(deps, done_at)[0])

    erasure = await store.erasure(None, erasure_id)  # type: ignore[arg-type]
    assert erasure is not None and erasure.completed_at == done_at
    assert set(erasure.answers) == set(privacy.SERVICES)
