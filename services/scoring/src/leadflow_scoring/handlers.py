"""Scoring's use cases: score a form fill, credit activity, follow sales' touches, sweep for decay.

Each event takes its locks first (identities, then the lead), writes what it brings, reads the lead
under its lock, and re-scores it under the active model; all through ``uow.deps.store``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
from leadflow_kit.uow import UnitOfWork, unit_of_work
from leadflow_scoring import domain
from leadflow_scoring.bootstrap import Deps
from leadflow_scoring.domain import LeadFields
from leadflow_scoring.store import (
    ActivityRecord,
    FormFill,
    LeadState,
    ScoredLead,
    ScoreWrite,
    StoredModel,
    identity_lock_keys,
    lead_lock_key,
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


# -- event handlers --------------------------------------------------------------------------


async def score_leads(events: list[Event[LeadEnriched]], uow: UnitOfWork[Deps]) -> None:
    for event in one_at_a_time(events):
        await score_enriched_lead(event, uow)


async def score_enriched_lead(event: Event[LeadEnriched], uow: UnitOfWork[Deps]) -> None:
    """A (possibly repeated) form fill: remember who the lead is, credit what they did before, score."""
    data, store, session = event.data, uow.deps.store, uow.session
    lead_id = data.lead_id
    email = domain.email_key(data.profile.email)
    await store.lock(session, [
        *identity_lock_keys(lead_id, email, data.visitor_id),
        *identity_lock_keys(data.captured_lead_id),
        lead_lock_key(lead_id),
    ])
    # The form fill itself is behavior (a demo request is the strongest signal there is).
    credited = await store.record_form_fill(session, FormFill(
        lead_id=lead_id, captured_lead_id=data.captured_lead_id, email=email, visitor_id=data.visitor_id,
        form_key=data.form_key, submitted_at=event.lead_captured_at or event.time, received_at=uow.now(),
    ))
    if credited:
        log.info("credited %d earlier activities to lead %s", credited, lead_id)
    await rescore(uow, lead_id, await store.load_lead(session, lead_id), Rescore("enriched", event.id), fill=event)


async def record_activities(events: list[Event[LeadActivity]], uow: UnitOfWork[Deps]) -> None:
    for event in one_at_a_time(events):
        await record_activity(event, uow)


async def record_activity(event: Event[LeadActivity], uow: UnitOfWork[Deps]) -> None:
    """Keep the activity once; re-score its lead now, or hold it until the visitor is identified."""
    data, store, session = event.data, uow.deps.store, uow.session
    email = domain.email_key(data.email)
    await store.lock(session, identity_lock_keys(data.lead_id, email, data.visitor_id))
    recorded = await store.record_activity(session, ActivityRecord(
        activity_id=data.activity_id, lead_id=data.lead_id, email=email, visitor_id=data.visitor_id,
        activity_type=data.activity_type, occurred_at=data.occurred_at, page_url=data.page_url,
        properties=data.properties, received_at=uow.now(),
    ))
    if recorded is None:
        log.info("activity %s was already recorded", data.activity_id)
        return
    if recorded.lead_id is None:
        return
    lead = await store.load_lead(session, recorded.lead_id)
    await rescore(uow, recorded.lead_id, lead, Rescore("activity", data.activity_id))


async def record_touches(events: list[Event[LeadTouched]], uow: UnitOfWork[Deps]) -> None:
    for event in one_at_a_time(events):
        await record_touch(event, uow)


async def record_touch(event: Event[LeadTouched], uow: UnitOfWork[Deps]) -> None:
    """Sales moved the lead (accepted, meeting booked, converted, disqualified): follow its stage."""
    data, store, session = event.data, uow.deps.store, uow.session
    await store.lock(session, identity_lock_keys(data.lead_id))
    lead_id = await store.lock_touched_lead(session, data.lead_id)
    state = await store.load_lead(session, lead_id)
    if state.lead is None:
        log.warning("touch %s for lead %s that scoring never saw; ignored", data.touch_type, lead_id)
        return
    stage = domain.stage_after_touch(state.lead.lifecycle_stage, data.touch_type)
    if stage == state.lead.lifecycle_stage:
        return
    await rescore(uow, lead_id, state, Rescore("touched", f"{data.touch_type}:{data.touch_id}", publish="on_stage",
                                               stage=stage))


# -- re-scoring --------------------------------------------------------------------------------


async def rescore(
    uow: UnitOfWork[Deps], lead_id: str, state: LeadState, why: Rescore, fill: Event[LeadEnriched] | None = None
) -> Rescored | None:
    """Score a lead now under the active model, move its stage, store it, and publish ``lead.scored``
    when ``why.publish`` says so. ``state`` was read under the lead's lock, which the caller still
    holds; ``fill`` is the form fill that brought the lead's fields, if one did."""
    store, session, now = uow.deps.store, uow.session, uow.now()
    lead = state.lead
    fields = LeadFields.of(fill.data) if fill is not None else lead.enriched if lead is not None else None
    if fields is None:
        return None
    model = await store.require_model(session, state.active_model_id)
    result = domain.score_lead(model.spec, domain.lead_facts(fields), state.activities, now)

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
    await store.save_score(session, ScoreWrite(
        lead_id=lead_id, result=result, model_id=model.id, stage=stage, stage_changed_at=stage_changed_at,
        mql_at=now if became_mql else None, scored_at=now, enriched=fill.data if fill is not None else None,
        event_id=event.id if event is not None else None, trigger=why.trigger, cause=why.cause,
        previous_score=lead.score if lead is not None else None, previous_stage=previous_stage,
        new_lead=lead is None, correlation_id=fill.correlation_id if fill is not None else None,
        captured_at=fill.lead_captured_at if fill is not None else None,
    ))
    return Rescored(result, stage, previous_stage, publish)


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
    return await rescore(uow, lead_id, state, Rescore(trigger, None, publish="on_change"))
