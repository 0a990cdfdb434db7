"""Scoring's use cases over one transaction (a ``UnitOfWork``): score, credit activity, move stages."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from leadflow_contracts import (
    AccountMatch,
    Attribution,
    DataQuality,
    Event,
    LeadActivity,
    LeadEnriched,
    LeadProfile,
    LeadScored,
    LeadTouched,
    ScoreLine,
    follow_up,
    new_event,
)
from leadflow_kit.consumer import UnitOfWork
from leadflow_kit.db import after_commit
from leadflow_scoring import domain
from leadflow_scoring.model import ScoringModelSpec
from leadflow_scoring.tables import activity as activity_table
from leadflow_scoring.tables import lead_identity, lead_score, model_activation, score_change, scoring_model

log = logging.getLogger(__name__)

SOURCE = "scoring"
SCORE_BUCKETS = (-50, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120, 150, 200)
# Activities older than every window in any sane model do not need loading.
MAX_ACTIVITIES_PER_LEAD = 2000


class ScoringMetrics:
    """Scoring's own metrics; built unregistered, then put on the app's registry by :meth:`register`."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.scored = Counter("leadflow_leads_scored_total", "lead.scored events published, by what caused them",
                              ["service", "trigger"], registry=None)
        self.mql = Counter("leadflow_mql_total", "Leads that became MQLs, by priority tier",
                           ["service", "tier"], registry=None)
        self.score = Histogram("leadflow_lead_score", "Scores published", ["service"], buckets=SCORE_BUCKETS,
                               registry=None)
        self.model_version = Gauge("leadflow_scoring_model_version", "Version number of the active scoring model",
                                   ["service", "model"], registry=None)
        self._model_shown: str | None = None

    def register(self, registry: CollectorRegistry) -> None:
        for metric in (self.scored, self.mql, self.score, self.model_version):
            registry.register(metric)

    def model_in_use(self, model: StoredModel) -> None:
        if self._model_shown != model.id:
            self.model_version.clear()
            self.model_version.labels(self.service, model.name).set(model.version)
            self._model_shown = model.id


@dataclass(frozen=True)
class StoredModel:
    id: str
    version: int
    name: str
    spec: ScoringModelSpec


class NoActiveModel(LookupError):
    pass


class ModelStore:
    """Reads model versions; parsed specs are cached by id since a version never changes."""

    def __init__(self) -> None:
        self._cache: dict[str, StoredModel] = {}

    async def get(self, session: AsyncSession, model_id: str) -> StoredModel | None:
        cached = self._cache.get(model_id)
        if cached is not None:
            return cached
        row = (await session.execute(select(scoring_model).where(scoring_model.c.id == model_id))).first()
        if row is None:
            return None
        model = StoredModel(row.id, row.version, row.name, ScoringModelSpec.model_validate(row.spec))
        self._cache[model_id] = model
        return model

    async def active(self, session: AsyncSession) -> StoredModel:
        model_id = await active_model_id(session)
        model = await self.get(session, model_id) if model_id else None
        if model is None:
            raise NoActiveModel("no scoring model is active")
        return model


async def active_model_id(session: AsyncSession) -> str | None:
    return (
        await session.execute(
            select(model_activation.c.model_id)
            .where(model_activation.c.rolled_back_at.is_(None))
            .order_by(model_activation.c.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


@dataclass
class Scoring:
    """What scoring's handlers share: the model store and the metrics."""

    models: ModelStore
    metrics: ScoringMetrics


# -- locking ---------------------------------------------------------------------------------


async def _lock(session: AsyncSession, keys: Sequence[str]) -> None:
    """Serialize work on the same identities across partitions (activity and form fills of one person
    can arrive on different partitions). Always sorted, so two handlers never wait on each other."""
    for key in sorted(set(keys)):
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def _identity_keys(lead_id: str | None = None, email: str | None = None, visitor_id: str | None = None) -> list[str]:
    keys = []
    if lead_id:
        keys.append(f"id:lead:{lead_id}")
    if email:
        keys.append(f"id:email:{email}")
    if visitor_id:
        keys.append(f"id:visitor:{visitor_id}")
    return keys


async def _lock_lead(session: AsyncSession, lead_id: str) -> None:
    # Taken after the identity locks, never before: the same order in every handler.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"row:{lead_id}"})


def _email_key(email: str | None) -> str | None:
    return email.strip().lower() if email and email.strip() else None


# -- the lead row and scoring ----------------------------------------------------------------


async def activities_of(session: AsyncSession, lead_id: str) -> list[domain.Activity]:
    rows = (
        await session.execute(
            select(activity_table)
            .where(activity_table.c.lead_id == lead_id)
            .order_by(activity_table.c.occurred_at.desc())
            .limit(MAX_ACTIVITIES_PER_LEAD)
        )
    ).all()
    return [
        domain.Activity(r.activity_id, r.activity_type, r.occurred_at, r.page_url, dict(r.properties or {}))
        for r in rows
    ]


async def _lead_row(session: AsyncSession, lead_id: str) -> Any:
    return (await session.execute(select(lead_score).where(lead_score.c.lead_id == lead_id))).first()


def _lines_json(lines: Sequence[ScoreLine]) -> list[dict[str, Any]]:
    return [line.model_dump(mode="json") for line in lines]


def _classification(row: Any) -> tuple[str, int, str, bool, str]:
    return (row.fit_grade, row.engagement_level, row.tier, row.is_mql, row.lifecycle_stage)


@dataclass(frozen=True)
class Rescored:
    result: domain.ScoreResult
    stage: domain.Stage
    previous_stage: domain.Stage | None
    published: bool


async def rescore(
    uow: UnitOfWork,
    scoring: Scoring,
    lead_id: str,
    *,
    trigger: str,
    cause: str | None,
    publish: str = "always",
    stage_override: domain.Stage | None = None,
    make_event: Callable[[LeadScored], Event[LeadScored]] | None = None,
    enriched: dict[str, Any] | None = None,
    correlation_id: str | None = None,
    captured_at: datetime | None = None,
) -> Rescored | None:
    """Score a lead now under the active model, move its stage, store it, and publish ``lead.scored``.

    ``publish``: "always", "on_change" (grade, engagement, tier, MQL or stage changed, or the model)
    or "on_stage" (only a stage change). The caller holds the lead's lock.
    """
    session, now = uow.session, uow.now()
    row = await _lead_row(session, lead_id)
    if row is None and enriched is None:
        return None
    model = await scoring.models.active(session)
    facts_source = enriched if enriched is not None else row.enriched
    result = domain.score_lead(model.spec, domain.lead_facts(facts_source), await activities_of(session, lead_id), now)

    current: domain.Stage = row.lifecycle_stage if row is not None else "lead"
    if stage_override is not None:
        stage = stage_override
    elif current in domain.SCORING_STAGES:
        stage = domain.stage_after_scoring(current, result.is_mql)
    else:
        stage = current
    stage_changed = stage != current
    # Set only on the one event that carries a transition; a new lead simply starts as a "lead".
    previous_stage: domain.Stage | None = current if stage_changed else None
    stage_changed_at = now if row is None or stage_changed else row.stage_changed_at
    became_mql = stage == "mql" and current != "mql"

    values: dict[str, Any] = {
        "score": result.score, "fit_points": result.fit_points, "behavior_points": result.behavior_points,
        "fit_grade": result.fit_grade, "engagement_level": result.engagement_level, "tier": result.tier,
        "is_mql": result.is_mql, "model_id": model.id, "breakdown": _lines_json(result.lines),
        "lifecycle_stage": stage, "stage_changed_at": stage_changed_at, "scored_at": now, "updated_at": now,
    }
    if became_mql:
        values["mql_at"] = now
    if enriched is not None:
        values["enriched"] = enriched
        values["email"] = _email_key((enriched.get("profile") or {}).get("email"))
    if row is None:
        await session.execute(
            insert(lead_score).values(
                lead_id=lead_id, correlation_id=correlation_id or lead_id, captured_at=captured_at, created_at=now,
                **values,
            )
        )
    else:
        await session.execute(update(lead_score).where(lead_score.c.lead_id == lead_id).values(**values))

    if publish == "always":
        should_publish = True
    elif publish == "on_stage":
        should_publish = stage_changed
    else:
        should_publish = row is None or stage_changed or model.id != row.model_id or (
            (result.fit_grade, result.engagement_level, result.tier, result.is_mql) != _classification(row)[:4]
        )
    if should_publish:
        source = enriched if enriched is not None else row.enriched
        data = _lead_scored(lead_id, source, result, model, stage, previous_stage, stage_changed_at, trigger,
                            duplicate=enriched is not None)
        if make_event is not None:
            event = make_event(data)
        else:
            event = new_event(data, source=SOURCE, subject=lead_id, correlation_id=row.correlation_id,
                              lead_captured_at=row.captured_at, time=now)
        await uow.publish(event)
        await session.execute(
            insert(score_change).values(
                lead_id=lead_id, event_id=event.id, at=now, trigger=trigger, cause=cause, score=result.score,
                previous_score=row.score if row is not None else None, fit_grade=result.fit_grade,
                engagement_level=result.engagement_level, tier=result.tier, is_mql=result.is_mql,
                model_id=model.id, breakdown=_lines_json(result.lines), lifecycle_stage=stage,
                previous_stage=previous_stage,
            )
        )
        after_commit(session, lambda: _count(scoring, model, data, became_mql))
    return Rescored(result, stage, previous_stage, should_publish)


def _count(scoring: Scoring, model: StoredModel, data: LeadScored, became_mql: bool) -> None:
    metrics = scoring.metrics
    metrics.scored.labels(metrics.service, data.trigger).inc()
    metrics.score.labels(metrics.service).observe(data.score)
    if became_mql:
        metrics.mql.labels(metrics.service, data.tier).inc()
    metrics.model_in_use(model)



def _lead_scored(
    lead_id: str, enriched: dict[str, Any], result: domain.ScoreResult, model: StoredModel, stage: domain.Stage,
    previous_stage: domain.Stage | None, stage_changed_at: datetime, trigger: str, *, duplicate: bool,
) -> LeadScored:
    account = enriched.get("account")
    quality = enriched.get("quality")
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
        duplicate_of=enriched.get("duplicate_of") if duplicate else None,
        form_key=enriched.get("form_key"),
        profile=LeadProfile.model_validate(enriched.get("profile") or {}),
        account=AccountMatch.model_validate(account) if account else None,
        quality=DataQuality.model_validate(quality) if quality else None,
        attribution=Attribution.model_validate(enriched.get("attribution") or {}),
    )


# -- event handlers --------------------------------------------------------------------------


async def _add_identity(session: AsyncSession, kind: str, value: str | None, lead_id: str) -> None:
    if value:
        await session.execute(
            insert(lead_identity).values(kind=kind, value=value, lead_id=lead_id).on_conflict_do_nothing()
        )


async def _lead_by_identity(
    session: AsyncSession, lead_id: str | None, email: str | None, visitor_id: str | None
) -> str | None:
    for kind, value in (("lead", lead_id), ("email", email), ("visitor", visitor_id)):
        if value:
            found = (
                await session.execute(
                    select(lead_identity.c.lead_id).where(lead_identity.c.kind == kind, lead_identity.c.value == value)
                )
            ).scalar_one_or_none()
            if found is not None:
                return str(found)
    return None


async def score_enriched_lead(event: Event[LeadEnriched], uow: UnitOfWork, scoring: Scoring) -> None:
    """A (possibly repeated) form fill: remember who the lead is, credit what they did before, score."""
    data = event.data
    cause: Event[Any] = event
    session, now = uow.session, uow.now()
    lead_id = data.lead_id
    email = _email_key(data.profile.email)
    await _lock(session, [
        *_identity_keys(lead_id, email, data.visitor_id),
        *_identity_keys(data.captured_lead_id),
    ])
    await _lock_lead(session, lead_id)
    for kind, value in (("lead", lead_id), ("lead", data.captured_lead_id), ("email", email),
                        ("visitor", data.visitor_id)):
        await _add_identity(session, kind, value, lead_id)

    # The form fill itself is behavior (a demo request is the strongest signal there is).
    submitted_at = event.lead_captured_at or event.time
    await session.execute(
        insert(activity_table)
        .values(activity_id=f"form:{data.captured_lead_id}", lead_id=lead_id, activity_type=domain.FORM_SUBMISSION,
                occurred_at=submitted_at, properties={"form_key": data.form_key}, received_at=now, credited_at=now)
        .on_conflict_do_nothing()
    )
    # Credit activity that arrived before we knew who this was.
    pending: list[ColumnElement[bool]] = [activity_table.c.wanted_lead_id.in_([lead_id, data.captured_lead_id])]
    if email:
        pending.append(activity_table.c.email == email)
    if data.visitor_id:
        pending.append(activity_table.c.visitor_id == data.visitor_id)
    credited = await session.execute(
        update(activity_table)
        .where(and_(activity_table.c.lead_id.is_(None), or_(*pending)))
        .values(lead_id=lead_id, credited_at=now)
        .returning(activity_table.c.activity_id)
    )
    stitched = len(credited.all())
    if stitched:
        log.info("credited %d earlier activities to lead %s", stitched, lead_id)

    await rescore(
        uow, scoring, lead_id, trigger="enriched", cause=event.id,
        make_event=lambda scored: follow_up(cause, scored, source=SOURCE, subject=lead_id, time=now),
        enriched=data.model_dump(mode="json"), correlation_id=event.correlation_id,
        captured_at=event.lead_captured_at,
    )


async def record_activity(event: Event[LeadActivity], uow: UnitOfWork, scoring: Scoring) -> None:
    """Keep the activity once; re-score its lead now, or hold it until the visitor is identified."""
    data = event.data
    session, now = uow.session, uow.now()
    email = _email_key(data.email)
    await _lock(session, _identity_keys(data.lead_id, email, data.visitor_id))
    lead_id = await _lead_by_identity(session, data.lead_id, email, data.visitor_id)
    inserted = (
        await session.execute(
            insert(activity_table)
            .values(activity_id=data.activity_id, lead_id=lead_id, wanted_lead_id=data.lead_id, email=email,
                    visitor_id=data.visitor_id, activity_type=data.activity_type, occurred_at=data.occurred_at,
                    page_url=data.page_url, properties=dict(data.properties), received_at=now,
                    credited_at=now if lead_id else None)
            .on_conflict_do_nothing()
            .returning(activity_table.c.activity_id)
        )
    ).first()
    if inserted is None:
        log.info("activity %s was already recorded", data.activity_id)
        return
    if lead_id is None:
        return
    await _add_identity(session, "visitor", data.visitor_id, lead_id)
    await _lock_lead(session, lead_id)
    await rescore(uow, scoring, lead_id, trigger="activity", cause=data.activity_id)


async def record_touch(event: Event[LeadTouched], uow: UnitOfWork, scoring: Scoring) -> None:
    """Sales moved the lead (accepted, meeting booked, converted, disqualified): follow its stage."""
    data = event.data
    session = uow.session
    await _lock(session, _identity_keys(data.lead_id))
    lead_id = await _lead_by_identity(session, data.lead_id, None, None) or data.lead_id
    await _lock_lead(session, lead_id)
    row = await _lead_row(session, lead_id)
    if row is None:
        log.warning("touch %s for lead %s that scoring never saw; ignored", data.touch_type, lead_id)
        return
    stage = domain.stage_after_touch(row.lifecycle_stage, data.touch_type)
    if stage == row.lifecycle_stage:
        return
    await rescore(uow, scoring, lead_id, trigger="touched", cause=f"{data.touch_type}:{data.touch_id}",
                  publish="on_stage", stage_override=stage)


# -- the decay sweep -------------------------------------------------------------------------


async def leads_due_for_sweep(
    session: AsyncSession, now: datetime, min_age: timedelta, active_model: str, limit: int
) -> list[str]:
    """Leads scoring still owns whose points may have faded, or that were scored by another model."""
    rows = await session.execute(
        select(lead_score.c.lead_id)
        .where(
            lead_score.c.lifecycle_stage.in_(sorted(domain.SCORING_STAGES)),
            lead_score.c.scored_at <= now - min_age,
            or_(lead_score.c.behavior_points != 0, lead_score.c.model_id != active_model),
        )
        .order_by(lead_score.c.scored_at)
        .limit(limit)
    )
    return [r.lead_id for r in rows]


async def sweep_lead(uow: UnitOfWork, scoring: Scoring, lead_id: str) -> Rescored | None:
    """Re-score one lead for decay; publishes only when its grade, engagement, tier, MQL or stage moved."""
    session = uow.session
    got = (
        await session.execute(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 0))"),
                              {"k": f"row:{lead_id}"})
    ).scalar_one()
    if not got:
        return None  # an event is re-scoring it right now
    row = await _lead_row(session, lead_id)
    if row is None or row.lifecycle_stage not in domain.SCORING_STAGES:
        return None
    active = await active_model_id(session)
    trigger = "model_change" if active is not None and row.model_id != active else "decay"
    return await rescore(uow, scoring, lead_id, trigger=trigger, cause=None, publish="on_change")

