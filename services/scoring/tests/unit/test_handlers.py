"""Scoring's lifecycle through its handlers, over the in-memory store: score a form fill, cross the MQL
threshold, credit activity, follow sales' touches, and recycle a stale MQL in the decay sweep."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import generate_latest

from leadflow_contracts import (
    DataQuality,
    Event,
    LeadActivity,
    LeadContact,
    LeadEnriched,
    LeadProfile,
    LeadScored,
    LeadTouched,
    new_event,
)
from leadflow_kit.fakes import RecordingOutbox, fake_unit_of_work
from leadflow_scoring import handlers, reads
from leadflow_scoring.bootstrap import Deps
from leadflow_scoring.model import default_model

from .fakes import FakeScoringStore, fake_deps

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Fit grade A; 72 points with a newsletter signup, an MQL with a demo request or a pricing page view more.
GOOD_FIT = {"industry": "Software", "employee_count": 500, "seniority": "manager", "function": "marketing",
            "country": "US", "job_title": "Marketing Manager", "email_type": "corporate"}


def enriched(lead_id: str = "lead-1", *, form_key: str = "newsletter", captured_lead_id: str | None = None,
             visitor_id: str | None = None, at: datetime = NOW, **profile: Any) -> Event[LeadEnriched]:
    profile = {**GOOD_FIT, "email": f"{lead_id}@acme.example", **profile}
    data = LeadEnriched(lead_id=lead_id, captured_lead_id=captured_lead_id or lead_id, form_key=form_key,
                        profile=LeadProfile(**profile), original=LeadContact(email=profile["email"]),
                        quality=DataQuality(score=85), visitor_id=visitor_id)
    return new_event(data, source="enrichment", subject=lead_id, lead_captured_at=at, time=at)


def activity(activity_type: str, activity_id: str, *, at: datetime = NOW, lead_id: str | None = None,
             visitor_id: str | None = None) -> Event[LeadActivity]:
    data = LeadActivity(activity_id=activity_id, activity_type=activity_type, occurred_at=at, lead_id=lead_id,
                        visitor_id=visitor_id)
    return new_event(data, source="capture", subject=lead_id or visitor_id or activity_id, time=at)


def touched(lead_id: str, touch_type: str, touch_id: str = "touch-1") -> Event[LeadTouched]:
    data = LeadTouched(lead_id=lead_id, touch_id=touch_id, touch_type=touch_type,
                       occurred_at=NOW)
    return new_event(data, source="routing", subject=lead_id, time=NOW)


class Scoring:
    """The handlers run one event at a time, each in a unit of work of its own at ``now``."""

    def __init__(self) -> None:
        self.store = FakeScoringStore()
        self.deps: Deps = fake_deps(self.store)
        self.now = NOW

    async def fill(self, event: Event[LeadEnriched]) -> list[Event[LeadScored]]:
        uow, outbox, _ = fake_unit_of_work(self.deps, self.now)
        await handlers.score_leads([event], uow)
        return scored(outbox)

    async def act(self, event: Event[LeadActivity]) -> list[Event[LeadScored]]:
        uow, outbox, _ = fake_unit_of_work(self.deps, self.now)
        await handlers.record_activities([event], uow)
        return scored(outbox)

    async def touch(self, event: Event[LeadTouched]) -> list[Event[LeadScored]]:
        uow, outbox, _ = fake_unit_of_work(self.deps, self.now)
        await handlers.record_touches([event], uow)
        return scored(outbox)

    async def sweep(self, lead_id: str) -> tuple[handlers.Rescored | None, list[Event[LeadScored]]]:
        uow, outbox, _ = fake_unit_of_work(self.deps, self.now)
        outcome = await handlers.sweep_lead(uow, lead_id)
        return outcome, scored(outbox)

    def metric(self, line: str) -> bool:
        return line in generate_latest(self.deps.platform.metrics.registry).decode()


def scored(outbox: RecordingOutbox) -> list[Event[LeadScored]]:
    return outbox.of_type(LeadScored.EVENT_TYPE)


async def test_an_enriched_lead_is_scored_stored_and_published_as_a_follow_up_of_its_fill() -> None:
    scoring = Scoring()
    fill = enriched("lead-1", form_key="newsletter", visitor_id="v-1")

    [event] = await scoring.fill(fill)

    assert (event.subject, event.correlation_id, event.source) == ("lead-1", fill.correlation_id, "scoring")
    assert event.data.trigger == "enriched"
    assert event.data.fit_grade == "A" and event.data.is_mql is False
    assert (event.data.lifecycle_stage, event.data.previous_stage) == ("lead", None)
    assert event.data.form_key == "newsletter" and event.data.profile.email == "lead-1@acme.example"
    assert event.data.model_version == f"{default_model().name}.v1"
    lead = scoring.store.leads["lead-1"]
    assert (lead.score, lead.lifecycle_stage, lead.correlation_id) == (event.data.score, "lead", fill.correlation_id)
    assert scoring.store.activities["form:lead-1"].activity_type == "form_submission"
    assert scoring.store.identities[("email", "lead-1@acme.example")] == "lead-1"
    assert scoring.store.identities[("visitor", "v-1")] == "lead-1"
    assert [change.event_id for change in scoring.store.changes] == [event.id]
    assert scoring.metric('leadflow_leads_scored_total{service="scoring",trigger="enriched"} 1.0')


async def test_a_good_fit_demo_request_crosses_the_mql_threshold_and_publishes_the_stage_change() -> None:
    scoring = Scoring()

    [event] = await scoring.fill(enriched("lead-1", form_key="demo"))

    assert event.data.is_mql is True and event.data.score >= 80
    assert (event.data.lifecycle_stage, event.data.previous_stage) == ("mql", "lead")
    assert event.data.tier == "hot"
    assert event.data.stage_changed_at == NOW
    assert scoring.store.leads["lead-1"].mql_at == NOW
    assert scoring.metric('leadflow_mql_total{service="scoring",tier="hot"} 1.0')


async def test_a_poor_fit_lead_stays_a_lead_and_counts_no_mql() -> None:
    scoring = Scoring()

    [event] = await scoring.fill(enriched("lead-1", form_key="demo", industry="Retail", employee_count=3,
                                          seniority="intern", function="other", country="ZZ", job_title="Intern"))

    assert event.data.is_mql is False and event.data.lifecycle_stage == "lead"
    assert scoring.store.leads["lead-1"].mql_at is None
    assert not scoring.metric('leadflow_mql_total{service="scoring",tier="hot"} 1.0')


async def test_an_activity_is_credited_to_its_lead_and_rescores_it() -> None:
    scoring = Scoring()
    [first] = await scoring.fill(enriched("lead-1"))

    [event] = await scoring.act(activity("pricing_page_view", "act-1", lead_id="lead-1"))

    assert event.data.trigger == "activity"
    assert event.data.score > first.data.score
    assert event.correlation_id == first.correlation_id
    assert scoring.store.activities["act-1"].lead_id == "lead-1"
    assert scoring.store.changes[-1].cause == "act-1"
    assert scoring.store.changes[-1].previous_score == first.data.score


async def test_activity_that_tips_the_score_over_the_threshold_makes_an_mql() -> None:
    scoring = Scoring()
    [first] = await scoring.fill(enriched("lead-1"))
    assert first.data.is_mql is False

    events = [event for n in range(4) for event in await scoring.act(
        activity("pricing_page_view", f"act-{n}", lead_id="lead-1"))]

    assert events[-1].data.is_mql is True
    assert next(e.data.previous_stage for e in events if e.data.lifecycle_stage == "mql") == "lead"
    assert scoring.store.leads["lead-1"].lifecycle_stage == "mql"


async def test_a_repeated_activity_is_kept_once_and_rescores_once() -> None:
    scoring = Scoring()
    await scoring.fill(enriched("lead-1"))

    assert len(await scoring.act(activity("pricing_page_view", "act-1", lead_id="lead-1"))) == 1
    assert await scoring.act(activity("pricing_page_view", "act-1", lead_id="lead-1")) == []


async def test_an_anonymous_visitors_activity_waits_and_is_credited_when_they_fill_a_form() -> None:
    scoring = Scoring()

    assert await scoring.act(activity("pricing_page_view", "act-1", visitor_id="v-1")) == []
    assert scoring.store.activities["act-1"].lead_id is None

    [event] = await scoring.fill(enriched("lead-1", visitor_id="v-1"))

    assert scoring.store.activities["act-1"].lead_id == "lead-1"
    assert scoring.store.activities["act-1"].credited_at == NOW
    assert any(line.rule_id == "pricing_page" for line in event.data.breakdown)


async def test_a_sales_touch_moves_the_stage_and_a_repeat_publishes_nothing() -> None:
    scoring = Scoring()
    await scoring.fill(enriched("lead-1", form_key="demo"))

    [event] = await scoring.touch(touched("lead-1", "accepted"))

    assert event.data.trigger == "touched"
    assert (event.data.lifecycle_stage, event.data.previous_stage) == ("sal", "mql")
    assert scoring.store.changes[-1].cause == "accepted:touch-1"
    assert await scoring.touch(touched("lead-1", "accepted", "touch-2")) == []
    assert scoring.store.leads["lead-1"].lifecycle_stage == "sal"


async def test_a_touch_of_a_duplicate_fill_moves_the_canonical_lead() -> None:
    scoring = Scoring()
    await scoring.fill(enriched("lead-1", form_key="demo"))
    await scoring.fill(enriched("lead-1", form_key="demo", captured_lead_id="lead-2"))

    [event] = await scoring.touch(touched("lead-2", "meeting_booked"))

    assert event.subject == "lead-1" and event.data.lifecycle_stage == "sql"


async def test_a_touch_for_a_lead_scoring_never_saw_is_ignored() -> None:
    scoring = Scoring()

    assert await scoring.touch(touched("lead-unknown", "accepted")) == []
    assert scoring.store.leads == {}


async def test_the_sweep_recycles_a_stale_mql_once() -> None:
    scoring = Scoring()
    await scoring.fill(enriched("lead-1", form_key="demo"))

    scoring.now = NOW + timedelta(days=120)
    outcome, [event] = await scoring.sweep("lead-1")

    assert outcome is not None and outcome.published
    assert event.data.trigger == "decay"
    assert (event.data.lifecycle_stage, event.data.previous_stage) == ("recycled", "mql")
    assert event.data.is_mql is False
    assert scoring.store.leads["lead-1"].lifecycle_stage == "recycled"
    assert scoring.store.changes[-1].cause is None
    _, again = await scoring.sweep("lead-1")
    assert again == []


async def test_the_sweep_publishes_nothing_while_nothing_moved() -> None:
    scoring = Scoring()
    [first] = await scoring.fill(enriched("lead-1", form_key="demo"))

    scoring.now = NOW + timedelta(hours=2)
    outcome, events = await scoring.sweep("lead-1")

    assert outcome is not None and not outcome.published and events == []
    assert scoring.store.leads["lead-1"].scored_at == scoring.now  # re-scored all the same
    assert scoring.store.changes[-1].event_id == first.id


async def test_the_sweep_leaves_leads_sales_owns_and_leads_an_event_holds() -> None:
    scoring = Scoring()
    await scoring.fill(enriched("lead-1", form_key="demo"))
    await scoring.fill(enriched("lead-2", form_key="demo"))
    await scoring.touch(touched("lead-1", "accepted"))
    scoring.store.busy.add("lead-2")

    scoring.now = NOW + timedelta(days=120)

    assert await scoring.sweep("lead-1") == (None, [])
    assert await scoring.sweep("lead-2") == (None, [])


async def test_a_lead_scored_by_an_older_model_is_rescored_as_a_model_change() -> None:
    scoring = Scoring()
    await scoring.fill(enriched("lead-1"))
    stricter = default_model().model_copy(update={"name": "stricter"})
    uow, _, _ = fake_unit_of_work(scoring.deps, NOW)
    model_id = await scoring.store.save_version(uow.session, stricter, source_text=None, created_by="ops")
    await scoring.store.activate(uow.session, model_id, by="ops", now=NOW)

    outcome, [event] = await scoring.sweep("lead-1")

    assert outcome is not None and event.data.trigger == "model_change"
    assert event.data.model_version == model_id


async def test_a_decay_sweep_goes_on_while_batches_come_back_full_and_no_further_than_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deps = fake_deps()
    batch = deps.settings.decay_sweep_batch_size
    examined = [batch, batch, batch - 1, batch]

    async def sweep_batch(_: Deps) -> handlers.SweepOutcome:
        return handlers.SweepOutcome(examined.pop(0), 0)

    monkeypatch.setattr(handlers, "sweep_batch", sweep_batch)
    await handlers.sweep_decay(deps)
    assert examined == [batch]  # stopped after the first short batch

    examined = [batch] * (handlers.MAX_BATCHES_PER_SWEEP + 5)
    await handlers.sweep_decay(deps)
    assert len(examined) == 5  # a lead that keeps coming back does not keep the sweep going


async def test_a_leads_score_is_read_with_decay_applied_and_its_history_newest_first() -> None:
    scoring = Scoring()
    [first] = await scoring.fill(enriched("lead-1", form_key="demo"))
    [second] = await scoring.touch(touched("lead-1", "accepted"))
    uow, _, _ = fake_unit_of_work(scoring.deps, NOW)
    later = NOW + timedelta(days=60)

    view = await reads.lead_score_view(uow.session, scoring.store, "lead-1", later, history_limit=10)

    assert view is not None
    assert view.current.score < first.data.score and view.current.as_of == later
    assert view.last_published_score == second.data.score and view.lifecycle_stage == "sal"
    assert [change.trigger for change in view.history] == ["touched", "enriched"]
    assert await reads.lead_score_view(uow.session, scoring.store, "lead-unknown", later, history_limit=10) is None


# -- a batch, as one by one ----------------------------------------------------------------------


async def handle(scoring: Scoring, events: list[Event[Any]]) -> list[Event[LeadScored]]:
    """``events`` of one type as one batch, in one unit of work."""
    uow, outbox, _ = fake_unit_of_work(scoring.deps, scoring.now)
    handler = {LeadEnriched: handlers.score_leads, LeadActivity: handlers.record_activities,
               LeadTouched: handlers.record_touches}[type(events[0].data)]
    await handler(events, uow)
    return scored(outbox)


async def test_a_batch_of_fills_activities_and_touches_leaves_what_one_by_one_leaves() -> None:
    story: list[list[Event[Any]]] = [
        [activity("pricing_page_view", "act-v", visitor_id="v-1"),
         activity("webinar_attended", "act-early", lead_id="lead-3")],
        # lead-1 twice (the repeat fill asks for a demo), lead-2 credits the visitor's activity, lead-3 its own.
        [enriched("lead-1"), enriched("lead-2", visitor_id="v-1"),
         enriched("lead-1", form_key="demo", captured_lead_id="lead-1b"), enriched("lead-3", industry="Retail")],
        # lead-3 is known by id; v-2 is made known by the first and credits the third; act-1 comes twice.
        [activity("pricing_page_view", "act-1", lead_id="lead-3"),
         activity("pricing_page_view", "act-2", lead_id="lead-3", visitor_id="v-2"),
         activity("pricing_page_view", "act-3", visitor_id="v-2"),
         activity("pricing_page_view", "act-1", lead_id="lead-3"),
         activity("pricing_page_view", "act-4", visitor_id="v-unknown")],
        [touched("lead-1b", "accepted", "t-1"), touched("lead-1", "accepted", "t-2"),
         touched("lead-2", "disqualified", "t-3"), touched("lead-9", "accepted", "t-4"),
         touched("lead-1", "meeting_booked", "t-5")],
    ]
    alone, together = Scoring(), Scoring()
    one_by_one, batched = [], []
    for batch in story:
        for event in batch:
            one_by_one += await handle(alone, [event])
        batched += await handle(together, batch)

    assert [(e.subject, e.correlation_id, e.data) for e in batched] == \
        [(e.subject, e.correlation_id, e.data) for e in one_by_one]
    assert together.store.leads == alone.store.leads
    assert together.store.activities == alone.store.activities
    assert together.store.identities == alone.store.identities
    assert [replace(w, event_id=None) for w in together.store.changes] == \
        [replace(w, event_id=None) for w in alone.store.changes]
    assert [e.data.lifecycle_stage for e in batched if e.subject == "lead-1"] == ["lead", "mql", "sal", "sql"]
    assert together.store.activities["act-3"].lead_id == "lead-3"
    # Per batch: locks, what the events bring, the leads read, the scores written (no lead is read when no
    # activity was credited); one by one, that many for each event.
    assert together.store.statements == 2 + 4 + 4 + 4
    assert alone.store.statements > 3 * together.store.statements
