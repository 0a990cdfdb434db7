"""Scoring's use cases: score a form fill, credit activity, follow sales' touches, sweep for decay.

A batch of events takes its locks first (identities, then the leads), writes what its events bring, reads
their leads under their locks, re-scores each event's lead in order under the active model, and stores the
scores: one statement each for the whole batch, all through ``uow.deps.store``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from leadflow_contracts import (
    Event,
    LeadActivity,
    LeadEnriched,
    LeadScored,
    LeadTouched,
    follow_up,
    new_event,
)
from leadflow_kit.consumer import one_at_a_time
from leadflow_kit.db import as_background_scan
from leadflow_kit.logging import log_context
from leadflow_kit.uow import UnitOfWork, unit_of_work
from leadflow_scoring import domain
from leadflow_scoring.bootstrap import Deps
from leadflow_scoring.domain import LeadFields
from leadflow_scoring.store import (
    MAX_ACTIVITIES_PER_LEAD,
    ActivityRecord,
    FormFill,
    LeadState,
    RecordedActivity,
    ScoredLead,
    ScoreWrite,
    StoredModel,
    identity_lock_keys,
    lead_lock_key,
    scored_after,
)

log = logging.getLogger(__name__)

SOURCE = "scoring"
# How many batches one decay sweep goes through at most (a lead the consumer keeps locked comes back).
MAX_BATCHES_PER_SWEEP = 100

Trigger = Literal["enriched", "activity", "decay", "touched", "model_change"]


@dataclass(frozen=True)
class Rescore:
    """Why a lead is re-scored, and when that is worth a ``lead.scored`` (``domain.Publish``)."""

    trigger: Trigger
    cause: str | None
    publish: domain.Publish = "always"
    stage: domain.Stage | None = None  # the stage sales moved the lead to


@dataclass(frozen=True)
class Rescored:
    result: domain.ScoreResult
    stage: domain.Stage
    previous_stage: domain.Stage | None
    published: bool
    write: ScoreWrite


# -- event handlers --------------------------------------------------------------------------


@dataclass
class Rescoring:
    """A batch's leads as its events so far leave them: read once, under their locks, and each re-score applied
    before the lead's next event is scored, so every event sees what it would see handled alone."""

    states: dict[str, LeadState]
    # Activities a later event of the batch brought: already read with their lead, not yet seen.
    later: set[str]
    writes: list[ScoreWrite] = field(default_factory=list)

    @classmethod
    async def load(cls, uow: UnitOfWork[Deps], lead_ids: list[str], brought: list[set[str]]) -> Rescoring:
        later = set().union(*brought)
        states = await uow.deps.store.load_leads(uow.session, lead_ids, MAX_ACTIVITIES_PER_LEAD + len(later))
        return cls(states, later)

    def state(self, lead_id: str, brought: set[str]) -> LeadState:
        """The lead as the event that ``brought`` these activities finds it."""
        self.later -= brought
        state = self.states[lead_id]
        seen = [activity for activity in state.activities if activity.activity_id not in self.later]
        return replace(state, activities=seen[:MAX_ACTIVITIES_PER_LEAD])

    def scored(self, rescored: Rescored | None) -> None:
        if rescored is not None:
            self.writes.append(rescored.write)
            state = self.states[rescored.write.lead_id]
            self.states[rescored.write.lead_id] = replace(state, lead=scored_after(state.lead, rescored.write))

    async def save(self, uow: UnitOfWork[Deps]) -> None:
        await uow.deps.store.save_scores(uow.session, self.writes)


async def score_leads(events: list[Event[LeadEnriched]], uow: UnitOfWork[Deps]) -> None:
    """Form fills (possibly repeated): remember who each lead is, credit what they did before, score. The
    batch takes its locks, writes the fills, reads the leads and stores the scores in one statement each."""
    store, session = uow.deps.store, uow.session
    fills = [_form_fill(event, uow.now()) for event in events]
    await store.lock(session, [key for fill in fills for key in (
        *identity_lock_keys(fill.lead_id, fill.email, fill.visitor_id), *identity_lock_keys(fill.captured_lead_id),
        lead_lock_key(fill.lead_id))])
    # The form fill itself is behavior (a demo request is the strongest signal there is).
    brought = await store.record_form_fills(session, fills)
    rescoring = await Rescoring.load(uow, [fill.lead_id for fill in fills], brought)
    for event, fill, activities in zip(one_at_a_time(events), fills, brought, strict=True):
        credited = len(activities - {f"form:{fill.captured_lead_id}"})
        if credited:
            log.debug("credited %d earlier activities to lead %s", credited, fill.lead_id)
        state = rescoring.state(fill.lead_id, activities)
        rescoring.scored(await rescore(uow, fill.lead_id, state, Rescore("enriched", event.id), fill=event))
    await rescoring.save(uow)


def _form_fill(event: Event[LeadEnriched], now: datetime) -> FormFill:
    data = event.data
    return FormFill(lead_id=data.lead_id, captured_lead_id=data.captured_lead_id,
                    email=domain.email_key(data.profile.email), visitor_id=data.visitor_id, form_key=data.form_key,
                    submitted_at=event.lead_captured_at or event.time, received_at=now)


async def record_activities(events: list[Event[LeadActivity]], uow: UnitOfWork[Deps]) -> None:
    """Keep each activity once; re-score its lead now, or hold it until the visitor is identified."""
    store, session = uow.deps.store, uow.session
    records = [_activity_record(event, uow.now()) for event in events]
    await store.lock(session, [key for record in records
                               for key in identity_lock_keys(record.lead_id, record.email, record.visitor_id)])
    recorded = await store.record_activities(session, records)
    credited = [(event, lead_id) for event, found in zip(one_at_a_time(events), recorded, strict=True)
                if (lead_id := _credited_to(event, found)) is not None]
    if not credited:
        return
    rescoring = await Rescoring.load(uow, [lead_id for _, lead_id in credited],
                                     [{event.data.activity_id} for event, _ in credited])
    for event, lead_id in credited:
        with log_context(lead_id=event.subject, correlation_id=event.correlation_id):
            state = rescoring.state(lead_id, {event.data.activity_id})
            rescoring.scored(await rescore(uow, lead_id, state, Rescore("activity", event.data.activity_id)))
    await rescoring.save(uow)


def _activity_record(event: Event[LeadActivity], now: datetime) -> ActivityRecord:
    data = event.data
    return ActivityRecord(
        activity_id=data.activity_id, lead_id=data.lead_id, email=domain.email_key(data.email),
        visitor_id=data.visitor_id, activity_type=data.activity_type, occurred_at=data.occurred_at,
        page_url=data.page_url, properties=data.properties, received_at=now,
    )


def _credited_to(event: Event[LeadActivity], found: RecordedActivity | None) -> str | None:
    """The lead the activity was kept for now; None while it waits for its lead, or when it was kept before
    (logged)."""
    if found is None:
        log.info("activity %s was already recorded", event.data.activity_id)
        return None
    return found.lead_id


async def record_touches(events: list[Event[LeadTouched]], uow: UnitOfWork[Deps]) -> None:
    """Sales moved leads (accepted, meeting booked, converted, disqualified): follow their stages."""
    store, session = uow.deps.store, uow.session
    await store.lock(session, [key for event in events for key in identity_lock_keys(event.data.lead_id)])
    lead_ids = await store.lock_touched_leads(session, [event.data.lead_id for event in events])
    rescoring = await Rescoring.load(uow, lead_ids, [])
    for event, lead_id in zip(one_at_a_time(events), lead_ids, strict=True):
        rescoring.scored(await _follow_touch(uow, event.data, lead_id, rescoring.state(lead_id, set())))
    await rescoring.save(uow)


async def _follow_touch(uow: UnitOfWork[Deps], data: LeadTouched, lead_id: str, state: LeadState) -> Rescored | None:
    if state.lead is None:
        log.warning("touch %s for lead %s that scoring never saw; ignored", data.touch_type, lead_id)
        return None
    stage = domain.stage_after_touch(state.lead.lifecycle_stage, data.touch_type)
    if stage == state.lead.lifecycle_stage:
        return None
    return await rescore(uow, lead_id, state, Rescore("touched", f"{data.touch_type}:{data.touch_id}",
                                                      publish="on_stage", stage=stage))


# -- re-scoring --------------------------------------------------------------------------------


async def rescore(
    uow: UnitOfWork[Deps], lead_id: str, state: LeadState, why: Rescore, fill: Event[LeadEnriched] | None = None
) -> Rescored | None:
    """Score a lead now under the active model, move its stage, and publish ``lead.scored`` when
    ``why.publish`` says so; the caller stores the returned write. ``state`` was read under the lead's
    lock, which the caller still holds; ``fill`` is the form fill that brought the lead's fields, if one did."""
    store, session, now = uow.deps.store, uow.session, uow.now()
    lead = state.lead
    fields = LeadFields.of(fill.data) if fill is not None else lead.enriched if lead is not None else None
    if fields is None:
        return None
    model = await store.require_model(session, state.active_model_id)
    result = model.compiled.score(domain.lead_facts(fields), state.activities, now)

    current: domain.Stage = lead.lifecycle_stage if lead is not None else "lead"
    stage = domain.next_stage(current, result.is_mql, why.stage)
    stage_changed = stage != current
    # Set only on the one event that carries a transition; a new lead simply starts as a "lead".
    previous_stage = current if stage_changed else None
    stage_changed_at = now if lead is None or stage_changed else lead.stage_changed_at
    became_mql = stage == "mql" and current != "mql"
    publish = domain.worth_publishing(
        why.publish, new_lead=lead is None, stage_changed=stage_changed,
        model_changed=lead is not None and model.id != lead.model_id,
        classification_changed=lead is not None and lead.classification() != (
            result.fit_grade, result.engagement_level, result.tier, result.is_mql),
    )
    event: Event[LeadScored] | None = None
    if publish:
        data = _lead_scored(lead_id, fields, result, model, stage, previous_stage, stage_changed_at, why.trigger,
                            duplicate=fill is not None)
        event = _scored_event(data, lead, fill, now)
        await uow.publish(event)
        uow.after_commit(partial(uow.deps.metrics.published, why.trigger, result.score, model,
                                         result.tier if became_mql else None))
    write = ScoreWrite(
        lead_id=lead_id, result=result, model_id=model.id, stage=stage, stage_changed_at=stage_changed_at,
        mql_at=now if became_mql else None, scored_at=now, enriched=fill.data if fill is not None else None,
        event_id=event.id if event is not None else None, trigger=why.trigger, cause=why.cause,
        previous_score=lead.score if lead is not None else None, previous_stage=previous_stage,
        new_lead=lead is None, correlation_id=fill.correlation_id if fill is not None else None,
        captured_at=fill.lead_captured_at if fill is not None else None,
    )
    return Rescored(result, stage, previous_stage, publish, write)


def _scored_event(
    data: LeadScored, lead: ScoredLead | None, fill: Event[LeadEnriched] | None, now: datetime
) -> Event[LeadScored]:
    if fill is not None:
        return follow_up(fill, data, source=SOURCE, subject=data.lead_id, time=now)
    assert lead is not None  # only a form fill creates a lead, and it brings its own event
    return new_event(data, source=SOURCE, subject=data.lead_id, correlation_id=lead.correlation_id,
                     lead_captured_at=lead.captured_at, time=now)


def _lead_scored(
    lead_id: str, fields: LeadFields, result: domain.ScoreResult, model: StoredModel, stage: domain.Stage,
    previous_stage: domain.Stage | None, stage_changed_at: datetime, trigger: Trigger, *, duplicate: bool,
) -> LeadScored:
    return LeadScored(
        lead_id=lead_id,
        score=result.score,
        fit_grade=result.fit_grade,
        engagement_level=result.engagement_level,
        tier=result.tier,
        is_mql=result.is_mql,
        model_version=model.id,
        breakdown=list(result.lines),
        lifecycle_stage=stage,
        previous_stage=previous_stage,
        stage_changed_at=stage_changed_at,
        trigger=trigger,
        duplicate_of=fields.duplicate_of if duplicate else None,
        form_key=fields.form_key,
        profile=fields.profile,
        account=fields.account,
        quality=fields.quality,
        attribution=fields.attribution,
        consent=fields.consent,
        custom_fields=fields.custom_fields,
        message=fields.original.message,
    )


# -- the decay sweep -------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepOutcome:
    examined: int
    published: int


async def sweep_decay(deps: Deps) -> None:
    """Re-score fading leads so a stale MQL is recycled even when nothing happens to it. A full batch
    means more are due: keep going until caught up (bounded, should a lead stay locked by the
    consumer and keep coming back)."""
    for _ in range(MAX_BATCHES_PER_SWEEP):
        if (await sweep_batch(deps)).examined < deps.settings.decay_sweep_batch_size:
            break


async def sweep_batch(deps: Deps) -> SweepOutcome:
    """One batch of the leads due for re-scoring."""
    platform, settings, store = deps.platform, deps.settings, deps.store
    now = platform.clock.now()
    async with platform.db.transaction() as session:
        active = await store.active_model_id(session)
        if active is None:
            return SweepOutcome(0, 0)
        await as_background_scan(session)
        due = await store.leads_due_for_sweep(
            session, now, timedelta(seconds=settings.decay_sweep_min_age_seconds), active,
            settings.decay_sweep_batch_size,
        )
    published = 0
    for lead_id in due:
        # One short transaction per lead, so the sweep never holds up the event consumer for long.
        async with unit_of_work(platform, deps) as uow:
            outcome = await sweep_lead(uow, lead_id)
        if outcome is not None and outcome.published:
            published += 1
    if published:
        log.info("decay sweep re-published %d of %d leads", published, len(due))
    return SweepOutcome(len(due), published)


async def sweep_lead(uow: UnitOfWork[Deps], lead_id: str) -> Rescored | None:
    """Re-score one lead for decay; publishes only when its grade, engagement, tier, MQL or stage moved."""
    store, session = uow.deps.store, uow.session
    if not await store.try_lock_lead(session, lead_id):
        return None  # an event is re-scoring it right now
    state = await store.load_lead(session, lead_id)
    if state.lead is None or state.lead.lifecycle_stage not in domain.SCORING_STAGES:
        return None
    active = state.active_model_id
    trigger: Trigger = "model_change" if active is not None and state.lead.model_id != active else "decay"
    rescored = await rescore(uow, lead_id, state, Rescore(trigger, None, publish="on_change"))
    if rescored is not None:
        await store.save_scores(session, [rescored.write])
    return rescored
