"""Scoring's use cases over one transaction (a ``UnitOfWork``): score, credit activity, move stages.

The consumer paths run plain SQL on the transaction's asyncpg connection (``driver_connection``):
a SQLAlchemy statement costs several times the CPU of the same statement through asyncpg
(docs/performance.md). Each event takes its locks in one statement, writes what it brings in one,
reads the lead (row, active model, activities) in one and stores the new score in one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

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
from leadflow_kit.db import after_commit, driver_connection
from leadflow_scoring import domain
from leadflow_scoring.model import ScoringModelSpec
from leadflow_scoring.tables import activity as activity_table
from leadflow_scoring.tables import lead_score

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


# The active model is the latest activation not rolled back.
SELECT_ACTIVE_MODEL_ID = (
    "SELECT model_id FROM model_activation WHERE rolled_back_at IS NULL ORDER BY id DESC LIMIT 1"
)


class ModelStore:
    """Reads model versions; parsed specs are cached by id since a version never changes."""

    def __init__(self) -> None:
        self._cache: dict[str, StoredModel] = {}

    async def get(self, session: AsyncSession, model_id: str) -> StoredModel | None:
        return await self.by_id(await driver_connection(session), model_id)

    async def by_id(self, conn: asyncpg.Connection, model_id: str) -> StoredModel | None:
        cached = self._cache.get(model_id)
        if cached is not None:
            return cached
        row = await conn.fetchrow("SELECT id, version, name, spec FROM scoring_model WHERE id = $1", model_id)
        if row is None:
            return None
        model = StoredModel(row["id"], row["version"], row["name"], ScoringModelSpec.model_validate(row["spec"]))
        self._cache[model_id] = model
        return model

    async def active(self, session: AsyncSession) -> StoredModel:
        conn = await driver_connection(session)
        return await self.require(conn, await conn.fetchval(SELECT_ACTIVE_MODEL_ID))

    async def require(self, conn: asyncpg.Connection, active_model_id: str | None) -> StoredModel:
        model = await self.by_id(conn, active_model_id) if active_model_id else None
        if model is None:
            raise NoActiveModel("no scoring model is active")
        return model


async def active_model_id(session: AsyncSession) -> str | None:
    found: str | None = await (await driver_connection(session)).fetchval(SELECT_ACTIVE_MODEL_ID)
    return found


@dataclass
class Scoring:
    """What scoring's handlers share: the model store and the metrics."""

    models: ModelStore
    metrics: ScoringMetrics


# -- locking ---------------------------------------------------------------------------------

# Locks are taken in one order everywhere (byte order, as Python sorts str), so handlers never
# deadlock: PostgreSQL evaluates a volatile function in the select list after ORDER BY, row by
# row. Every "id:" key sorts before every "row:" key: identity locks come before a lead's lock.
LOCK_KEYS = """
SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
FROM unnest($1::text[]) AS k
ORDER BY k COLLATE "C"
"""


async def _lock(conn: asyncpg.Connection, keys: Sequence[str]) -> None:
    """Serialize work on the same identities across partitions (activity and form fills of one person
    can arrive on different partitions)."""
    await conn.execute(LOCK_KEYS, list(set(keys)))


def _identity_keys(lead_id: str | None = None, email: str | None = None, visitor_id: str | None = None) -> list[str]:
    keys = []
    if lead_id:
        keys.append(f"id:lead:{lead_id}")
    if email:
        keys.append(f"id:email:{email}")
    if visitor_id:
        keys.append(f"id:visitor:{visitor_id}")
    return keys


def _lead_key(lead_id: str) -> str:
    return f"row:{lead_id}"


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


# Everything a re-score reads, in one statement: the lead's row (all NULL for a new lead), the
# active model and the lead's activities (newest first, as one array of records).
LOAD_LEAD = f"""
SELECT
    ({SELECT_ACTIVE_MODEL_ID}) AS active_model_id,
    ARRAY(
        SELECT ROW(a.activity_id, a.activity_type, a.occurred_at, a.page_url, a.properties)
        FROM activity AS a
        WHERE a.lead_id = $1::text
        ORDER BY a.occurred_at DESC
        LIMIT {MAX_ACTIVITIES_PER_LEAD}
    ) AS activities,
    s.lead_id, s.enriched, s.correlation_id, s.captured_at, s.score, s.fit_grade, s.engagement_level, s.tier,
    s.is_mql, s.model_id, s.lifecycle_stage, s.stage_changed_at
FROM (SELECT 1) AS one
LEFT JOIN lead_score AS s ON s.lead_id = $1::text
"""


@dataclass(frozen=True)
class LeadState:
    """A lead as a re-score finds it, read under the lead's lock."""

    row: asyncpg.Record | None
    active_model_id: str | None
    activities: list[domain.Activity]


async def _load(conn: asyncpg.Connection, lead_id: str) -> LeadState:
    found = await conn.fetchrow(LOAD_LEAD, lead_id)
    assert found is not None  # the outer join always yields one row
    activities = [
        domain.Activity(activity_id, activity_type, occurred_at, page_url, dict(properties or {}))
        for activity_id, activity_type, occurred_at, page_url, properties in found["activities"]
    ]
    row = found if found["lead_id"] is not None else None
    return LeadState(row, found["active_model_id"], activities)


def _lines_json(lines: Sequence[ScoreLine]) -> str:
    return json.dumps([line.model_dump(mode="json") for line in lines])


def _classification(row: asyncpg.Record) -> tuple[str, int, str, bool]:
    return (row["fit_grade"], row["engagement_level"], row["tier"], row["is_mql"])


# The lead's new score, and with it (when ``$17`` carries an event id) the score_change row that
# explains the published event, in one statement. $1-$16 are shared by the insert and the update.
_SCORE_CHANGE = """
INSERT INTO score_change (lead_id, event_id, at, trigger, cause, score, previous_score, fit_grade, engagement_level,
                          tier, is_mql, model_id, breakdown, lifecycle_stage, previous_stage)
SELECT lead_id, $17::text, scored_at, $18::text, $19::text, score, $20::float8, fit_grade, engagement_level,
       tier, is_mql, model_id, breakdown, lifecycle_stage, $21::text
FROM scored
WHERE $17::text IS NOT NULL
"""
_SCORED_COLUMNS = (
    "lead_id, scored_at, score, fit_grade, engagement_level, tier, is_mql, model_id, breakdown, lifecycle_stage"
)
INSERT_SCORE = f"""
WITH scored AS (
    INSERT INTO lead_score (lead_id, score, fit_points, behavior_points, fit_grade, engagement_level, tier, is_mql,
                            model_id, breakdown, lifecycle_stage, stage_changed_at, mql_at, scored_at, updated_at,
                            enriched, email, correlation_id, captured_at, created_at)
    VALUES ($1::text, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13::timestamptz, $14, $14,
            $15::jsonb, $16, $22, $23, $14)
    RETURNING {_SCORED_COLUMNS}
)
{_SCORE_CHANGE}
"""
# ``enriched``/``email`` change only with a form fill ($15 not NULL); ``mql_at`` only on becoming an MQL.
UPDATE_SCORE = f"""
WITH scored AS (
    UPDATE lead_score
    SET score = $2, fit_points = $3, behavior_points = $4, fit_grade = $5, engagement_level = $6, tier = $7,
        is_mql = $8, model_id = $9, breakdown = $10::jsonb, lifecycle_stage = $11, stage_changed_at = $12,
        mql_at = COALESCE($13::timestamptz, mql_at), scored_at = $14, updated_at = $14,
        enriched = COALESCE($15::jsonb, enriched),
        email = CASE WHEN $15::jsonb IS NULL THEN email ELSE $16 END
    WHERE lead_id = $1::text
    RETURNING {_SCORED_COLUMNS}
)
{_SCORE_CHANGE}
"""


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
    lead: LeadState,
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

    ``lead`` is what :func:`_load` read under the lead's lock, which the caller still holds.
    ``publish``: "always", "on_change" (grade, engagement, tier, MQL or stage changed, or the model)
    or "on_stage" (only a stage change).
    """
    session, now = uow.session, uow.now()
    row = lead.row
    if enriched is not None:
        facts_source: dict[str, Any] = enriched
    elif row is not None:
        facts_source = row["enriched"]
    else:
        return None
    conn = await driver_connection(session)
    model = await scoring.models.require(conn, lead.active_model_id)
    result = domain.score_lead(model.spec, domain.lead_facts(facts_source), lead.activities, now)

    current: domain.Stage = row["lifecycle_stage"] if row is not None else "lead"
    if stage_override is not None:
        stage = stage_override
    elif current in domain.SCORING_STAGES:
        stage = domain.stage_after_scoring(current, result.is_mql)
    else:
        stage = current
    stage_changed = stage != current
    # Set only on the one event that carries a transition; a new lead simply starts as a "lead".
    previous_stage: domain.Stage | None = current if stage_changed else None
    stage_changed_at: datetime = now if row is None or stage_changed else row["stage_changed_at"]
    became_mql = stage == "mql" and current != "mql"

    if publish == "always":
        should_publish = True
    elif publish == "on_stage":
        should_publish = stage_changed
    else:
        should_publish = row is None or stage_changed or model.id != row["model_id"] or (
            (result.fit_grade, result.engagement_level, result.tier, result.is_mql) != _classification(row)
        )
    event: Event[LeadScored] | None = None
    if should_publish:
        data = _lead_scored(lead_id, facts_source, result, model, stage, previous_stage, stage_changed_at, trigger,
                            duplicate=enriched is not None)
        if make_event is not None:
            event = make_event(data)
        else:
            assert row is not None  # only a form fill creates a lead, and it brings its own event
            event = new_event(data, source=SOURCE, subject=lead_id, correlation_id=row["correlation_id"],
                              lead_captured_at=row["captured_at"], time=now)
        await uow.publish(event)
        after_commit(session, lambda: _count(scoring, model, data, became_mql))

    params: list[Any] = [
        lead_id, result.score, result.fit_points, result.behavior_points, result.fit_grade, result.engagement_level,
        result.tier, result.is_mql, model.id, _lines_json(result.lines), stage, stage_changed_at,
        now if became_mql else None, now,
        json.dumps(enriched) if enriched is not None else None,
        _email_key((enriched.get("profile") or {}).get("email")) if enriched is not None else None,
        event.id if event is not None else None, trigger, cause, row["score"] if row is not None else None,
        previous_stage,
    ]
    if row is None:
        await conn.execute(INSERT_SCORE, *params, correlation_id or lead_id, captured_at)
    else:
        await conn.execute(UPDATE_SCORE, *params)
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

# A form fill's writes before scoring: the lead's identities, the fill itself as activity, and
# crediting the activity that waited for this lead (the form row is born credited, so the UPDATE,
# which sees the statement's starting snapshot, never meets it). Returns how many were credited.
RECORD_FORM_FILL = """
WITH identity AS (
    INSERT INTO lead_identity (kind, value, lead_id)
    SELECT kind, value, $1::text FROM unnest($2::text[], $3::text[]) AS i(kind, value)
    ON CONFLICT DO NOTHING
), form AS (
    INSERT INTO activity (activity_id, lead_id, activity_type, occurred_at, properties, received_at, credited_at)
    VALUES ($4::text, $1::text, $5::text, $6::timestamptz, $7::jsonb, $8::timestamptz, $8::timestamptz)
    ON CONFLICT DO NOTHING
), credited AS (
    UPDATE activity SET lead_id = $1::text, credited_at = $8::timestamptz
    WHERE lead_id IS NULL AND (wanted_lead_id = ANY($9::text[]) OR email = $10::text OR visitor_id = $11::text)
    RETURNING activity_id
)
SELECT count(*) FROM credited
"""

# An activity: find its lead by identity (lead id, then email, then visitor), keep the activity
# once, remember the visitor for that lead, and take the lead's lock. Returns no row when the
# activity was already recorded, a NULL lead_id when it waits for its lead. The lock comes last in
# the statement (after the identity locks the handler holds), and this statement's snapshot only
# reads identities those locks protect; what the lock guards is read by the next statement.
RECORD_ACTIVITY = """
WITH found AS (
    SELECT i.lead_id
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(kind, value, n)
    JOIN lead_identity AS i ON i.kind = k.kind AND i.value = k.value
    ORDER BY k.n
    LIMIT 1
), recorded AS (
    INSERT INTO activity (activity_id, lead_id, wanted_lead_id, email, visitor_id, activity_type, occurred_at,
                          page_url, properties, received_at, credited_at)
    SELECT $3::text, found.lead_id, $4::text, $5::text, $6::text, $7::text, $8::timestamptz, $9::text, $10::jsonb,
           $11::timestamptz, CASE WHEN found.lead_id IS NOT NULL THEN $11::timestamptz END
    FROM (SELECT 1) AS one LEFT JOIN found ON true
    ON CONFLICT DO NOTHING
    RETURNING lead_id
), visitor AS (
    INSERT INTO lead_identity (kind, value, lead_id)
    SELECT 'visitor', $12::text, lead_id FROM recorded WHERE lead_id IS NOT NULL AND $12::text IS NOT NULL
    ON CONFLICT DO NOTHING
)
SELECT lead_id,
       CASE WHEN lead_id IS NOT NULL THEN pg_advisory_xact_lock(hashtextextended('row:' || lead_id, 0)) END
FROM recorded
"""

# A touch's lead (the canonical one when the touched id was a duplicate fill), and its lock. As in
# RECORD_ACTIVITY, the snapshot only reads an identity the handler's lock protects.
LOCK_TOUCHED_LEAD = """
WITH touched AS MATERIALIZED (
    SELECT COALESCE((SELECT lead_id FROM lead_identity WHERE kind = 'lead' AND value = $1::text), $1::text)
        AS lead_id
)
SELECT lead_id, pg_advisory_xact_lock(hashtextextended('row:' || lead_id, 0)) FROM touched
"""


def _identities(*pairs: tuple[str, str | None]) -> tuple[list[str], list[str]]:
    """Kinds and values, in the order given, without the empty ones: two parallel arrays for SQL."""
    present = list(dict.fromkeys((kind, value) for kind, value in pairs if value))
    return [kind for kind, _ in present], [value for _, value in present]


async def score_enriched_lead(event: Event[LeadEnriched], uow: UnitOfWork, scoring: Scoring) -> None:
    """A (possibly repeated) form fill: remember who the lead is, credit what they did before, score."""
    data = event.data
    cause: Event[Any] = event
    now = uow.now()
    conn = await driver_connection(uow.session)
    lead_id = data.lead_id
    email = _email_key(data.profile.email)
    await _lock(conn, [
        *_identity_keys(lead_id, email, data.visitor_id),
        *_identity_keys(data.captured_lead_id),
        _lead_key(lead_id),
    ])
    kinds, values = _identities(("lead", lead_id), ("lead", data.captured_lead_id), ("email", email),
                                ("visitor", data.visitor_id))
    # The form fill itself is behavior (a demo request is the strongest signal there is).
    submitted_at = event.lead_captured_at or event.time
    stitched = await conn.fetchval(
        RECORD_FORM_FILL, lead_id, kinds, values, f"form:{data.captured_lead_id}", domain.FORM_SUBMISSION,
        submitted_at, json.dumps({"form_key": data.form_key}), now, [lead_id, data.captured_lead_id], email,
        data.visitor_id or None,
    )
    if stitched:
        log.info("credited %d earlier activities to lead %s", stitched, lead_id)

    await rescore(
        uow, scoring, lead_id, await _load(conn, lead_id), trigger="enriched", cause=event.id,
        make_event=lambda scored: follow_up(cause, scored, source=SOURCE, subject=lead_id, time=now),
        enriched=data.model_dump(mode="json"), correlation_id=event.correlation_id,
        captured_at=event.lead_captured_at,
    )


async def record_activity(event: Event[LeadActivity], uow: UnitOfWork, scoring: Scoring) -> None:
    """Keep the activity once; re-score its lead now, or hold it until the visitor is identified."""
    data = event.data
    now = uow.now()
    conn = await driver_connection(uow.session)
    email = _email_key(data.email)
    await _lock(conn, _identity_keys(data.lead_id, email, data.visitor_id))
    kinds, values = _identities(("lead", data.lead_id), ("email", email), ("visitor", data.visitor_id))
    recorded = await conn.fetchrow(
        RECORD_ACTIVITY, kinds, values, data.activity_id, data.lead_id, email, data.visitor_id, data.activity_type,
        data.occurred_at, data.page_url, json.dumps(dict(data.properties)), now, data.visitor_id or None,
    )
    if recorded is None:
        log.info("activity %s was already recorded", data.activity_id)
        return
    lead_id: str | None = recorded["lead_id"]
    if lead_id is None:
        return
    await rescore(uow, scoring, lead_id, await _load(conn, lead_id), trigger="activity", cause=data.activity_id)


async def record_touch(event: Event[LeadTouched], uow: UnitOfWork, scoring: Scoring) -> None:
    """Sales moved the lead (accepted, meeting booked, converted, disqualified): follow its stage."""
    data = event.data
    conn = await driver_connection(uow.session)
    await _lock(conn, _identity_keys(data.lead_id))
    lead_id: str = await conn.fetchval(LOCK_TOUCHED_LEAD, data.lead_id)
    lead = await _load(conn, lead_id)
    if lead.row is None:
        log.warning("touch %s for lead %s that scoring never saw; ignored", data.touch_type, lead_id)
        return
    stage = domain.stage_after_touch(lead.row["lifecycle_stage"], data.touch_type)
    if stage == lead.row["lifecycle_stage"]:
        return
    await rescore(uow, scoring, lead_id, lead, trigger="touched", cause=f"{data.touch_type}:{data.touch_id}",
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
    conn = await driver_connection(uow.session)
    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", _lead_key(lead_id)):
        return None  # an event is re-scoring it right now
    lead = await _load(conn, lead_id)
    if lead.row is None or lead.row["lifecycle_stage"] not in domain.SCORING_STAGES:
        return None
    active = lead.active_model_id
    trigger = "model_change" if active is not None and lead.row["model_id"] != active else "decay"
    return await rescore(uow, scoring, lead_id, lead, trigger=trigger, cause=None, publish="on_change")
