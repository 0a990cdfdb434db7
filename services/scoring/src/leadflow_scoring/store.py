"""Every SQL statement of scoring, behind named methods that take the transaction first and take and
return typed values.

The consumer paths run plain SQL on the transaction's asyncpg connection (``driver_connection``):
a SQLAlchemy statement costs several times the CPU of the same statement through asyncpg
(docs/performance.md). Each event takes its locks in one statement, writes what it brings in one,
reads the lead (row, active model, activities) in one and stores the new score in one. The admin
queries (model versions, reads, dry runs) use SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import LeadEnriched, ScoreLine
from leadflow_kit.db import after_commit, driver_connection
from leadflow_scoring import domain
from leadflow_scoring.domain import LeadFields, Stage
from leadflow_scoring.model import ScoringModelSpec
from leadflow_scoring.tables import activity as activity_table
from leadflow_scoring.tables import lead_identity, lead_score, model_activation, score_change, scoring_model

# Activities older than every window in any sane model do not need loading.
MAX_ACTIVITIES_PER_LEAD = 2000
VERSION_LOCK = "scoring-model-versions"


class NoActiveModel(LookupError):
    pass


class UnknownModel(LookupError):
    pass


class NothingToRollBack(LookupError):
    pass


# -- typed values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredModel:
    id: str
    version: int
    name: str
    spec: ScoringModelSpec


@dataclass(frozen=True)
class ScoredLead:
    """A lead's ``lead_score`` row: what it brought (``enriched``) and how it was last scored."""

    lead_id: str
    enriched: LeadFields
    correlation_id: str
    captured_at: datetime | None
    score: float
    behavior_points: float
    fit_grade: str
    engagement_level: int
    tier: str
    is_mql: bool
    model_id: str
    lifecycle_stage: Stage
    stage_changed_at: datetime
    mql_at: datetime | None
    scored_at: datetime

    def classification(self) -> tuple[str, int, str, bool]:
        return (self.fit_grade, self.engagement_level, self.tier, self.is_mql)


@dataclass(frozen=True)
class LeadState:
    """A lead as a re-score finds it, read under the lead's lock (``lead`` is None for a new lead)."""

    lead: ScoredLead | None
    active_model_id: str | None
    activities: list[domain.Activity]


@dataclass(frozen=True)
class FormFill:
    """A form fill's writes before scoring: who the lead is, and the fill itself as activity."""

    lead_id: str
    captured_lead_id: str
    email: str | None
    visitor_id: str | None
    form_key: str
    submitted_at: datetime
    received_at: datetime


@dataclass(frozen=True)
class ActivityRecord:
    activity_id: str
    lead_id: str | None
    email: str | None
    visitor_id: str | None
    activity_type: str
    occurred_at: datetime
    page_url: str | None
    properties: Mapping[str, str]
    received_at: datetime


@dataclass(frozen=True)
class RecordedActivity:
    """A newly kept activity, and the lead it was credited to (None while it waits for its lead)."""

    lead_id: str | None


@dataclass(frozen=True)
class ScoreWrite:
    """A lead's new score, and (with ``event_id``) the score_change row explaining the event published."""

    lead_id: str
    result: domain.ScoreResult
    model_id: str
    stage: Stage
    stage_changed_at: datetime
    mql_at: datetime | None  # set only when the lead became an MQL
    scored_at: datetime
    enriched: LeadEnriched | None  # a form fill's data, kept as what rules read from now on
    event_id: str | None
    trigger: str
    cause: str | None
    previous_score: float | None
    previous_stage: Stage | None
    # A new lead's row: who it is (lead.captured) under which correlation id.
    new_lead: bool = False
    correlation_id: str | None = None
    captured_at: datetime | None = None


class ScoreChange(BaseModel):
    """A published score, as the lead's history shows it."""

    at: datetime
    trigger: str
    cause: str | None
    score: float
    previous_score: float | None
    fit_grade: str
    engagement_level: int
    tier: str
    is_mql: bool
    model_version: str
    lifecycle_stage: str
    previous_stage: str | None
    breakdown: list[ScoreLine]


@dataclass(frozen=True)
class RecentLead:
    lead_id: str
    enriched: LeadFields


@dataclass(frozen=True)
class ModelVersion:
    id: str
    version: int
    name: str
    description: str
    spec: dict[str, Any]
    created_at: datetime
    created_by: str | None
    active: bool
    activated_at: datetime | None


@dataclass(frozen=True)
class Activation:
    id: int
    model_id: str
    activated_by: str | None
    activated_at: datetime
    rolled_back_at: datetime | None
    rolled_back_by: str | None


# -- statements -------------------------------------------------------------------------------

# The active model is the latest activation not rolled back.
SELECT_ACTIVE_MODEL_ID = (
    "SELECT model_id FROM model_activation WHERE rolled_back_at IS NULL ORDER BY id DESC LIMIT 1"
)

# Locks are taken in one order everywhere (byte order, as Python sorts str), so handlers never
# deadlock: PostgreSQL evaluates a volatile function in the select list after ORDER BY, row by
# row. Every "id:" key sorts before every "row:" key: identity locks come before a lead's lock.
LOCK_KEYS = """
SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
FROM unnest($1::text[]) AS k
ORDER BY k COLLATE "C"
"""

_LEAD_COLUMNS = (
    "lead_id, enriched, correlation_id, captured_at, score, behavior_points, fit_grade, engagement_level, tier, "
    "is_mql, model_id, lifecycle_stage, stage_changed_at, mql_at, scored_at"
)

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
    {", ".join(f"s.{column}" for column in _LEAD_COLUMNS.split(", "))}
FROM (SELECT 1) AS one
LEFT JOIN lead_score AS s ON s.lead_id = $1::text
"""

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


def identity_lock_keys(
    lead_id: str | None = None, email: str | None = None, visitor_id: str | None = None
) -> list[str]:
    keys = []
    if lead_id:
        keys.append(f"id:lead:{lead_id}")
    if email:
        keys.append(f"id:email:{email}")
    if visitor_id:
        keys.append(f"id:visitor:{visitor_id}")
    return keys


def lead_lock_key(lead_id: str) -> str:
    return f"row:{lead_id}"


def identities(*pairs: tuple[str, str | None]) -> tuple[list[str], list[str]]:
    """Kinds and values, in the order given, without the empty ones: two parallel arrays for SQL."""
    present = list(dict.fromkeys((kind, value) for kind, value in pairs if value))
    return [kind for kind, _ in present], [value for _, value in present]


class _Columns(Protocol):
    """A row by column name: an asyncpg record or a SQLAlchemy row's mapping."""

    def __getitem__(self, column: str, /) -> Any: ...


def _scored_lead(row: _Columns) -> ScoredLead:
    return ScoredLead(
        lead_id=row["lead_id"], enriched=LeadFields.model_validate(row["enriched"]),
        correlation_id=row["correlation_id"], captured_at=row["captured_at"], score=row["score"],
        behavior_points=row["behavior_points"],
        fit_grade=row["fit_grade"], engagement_level=row["engagement_level"], tier=row["tier"],
        is_mql=row["is_mql"], model_id=row["model_id"], lifecycle_stage=row["lifecycle_stage"],
        stage_changed_at=row["stage_changed_at"], mql_at=row["mql_at"], scored_at=row["scored_at"],
    )


def _score_params(write: ScoreWrite) -> list[Any]:
    """$1-$21 of INSERT_SCORE and UPDATE_SCORE."""
    result, enriched = write.result, write.enriched
    return [
        write.lead_id, result.score, result.fit_points, result.behavior_points, result.fit_grade,
        result.engagement_level, result.tier, result.is_mql, write.model_id,
        json.dumps([line.model_dump(mode="json") for line in result.lines]), write.stage, write.stage_changed_at,
        write.mql_at, write.scored_at,
        json.dumps(enriched.model_dump(mode="json")) if enriched is not None else None,
        domain.email_key(enriched.profile.email) if enriched is not None else None,
        write.event_id, write.trigger, write.cause, write.previous_score, write.previous_stage,
    ]


def _version(row: Any, active_id: str | None, first_activation: dict[str, datetime]) -> ModelVersion:
    return ModelVersion(
        id=row.id, version=row.version, name=row.name, description=row.description, spec=row.spec,
        created_at=row.created_at, created_by=row.created_by, active=row.id == active_id,
        activated_at=first_activation.get(row.id),
    )


class ScoringStore:
    """Scoring's tables. Parsed model versions are cached by id, since a version never changes."""

    def __init__(self) -> None:
        self._models: dict[str, StoredModel] = {}

    def on_commit(self, session: AsyncSession, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction commits (metrics of what it published)."""
        after_commit(session, action)

    # -- the consumer's hot path ---------------------------------------------------------------

    async def lock(self, session: AsyncSession, keys: Sequence[str]) -> None:
        """Serialize work on the same identities across partitions (activity and form fills of one person
        can arrive on different partitions)."""
        await (await driver_connection(session)).execute(LOCK_KEYS, list(set(keys)))

    async def try_lock_lead(self, session: AsyncSession, lead_id: str) -> bool:
        """The lead's lock if nobody holds it (an event re-scoring it right now does)."""
        conn = await driver_connection(session)
        return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))",
                                        lead_lock_key(lead_id)))

    async def record_form_fill(self, session: AsyncSession, fill: FormFill) -> int:
        """Remember who the lead is, keep the fill as activity, credit what waited for the lead;
        returns how many earlier activities were credited."""
        kinds, values = identities(("lead", fill.lead_id), ("lead", fill.captured_lead_id), ("email", fill.email),
                                   ("visitor", fill.visitor_id))
        conn = await driver_connection(session)
        credited: int = await conn.fetchval(
            RECORD_FORM_FILL, fill.lead_id, kinds, values, f"form:{fill.captured_lead_id}", domain.FORM_SUBMISSION,
            fill.submitted_at, json.dumps({"form_key": fill.form_key}), fill.received_at,
            [fill.lead_id, fill.captured_lead_id], fill.email, fill.visitor_id or None,
        )
        return credited

    async def record_activity(self, session: AsyncSession, record: ActivityRecord) -> RecordedActivity | None:
        """Keep the activity once, credited to the lead its identities name (whose lock it then takes);
        None when it was already kept."""
        kinds, values = identities(("lead", record.lead_id), ("email", record.email), ("visitor", record.visitor_id))
        conn = await driver_connection(session)
        row = await conn.fetchrow(
            RECORD_ACTIVITY, kinds, values, record.activity_id, record.lead_id, record.email, record.visitor_id,
            record.activity_type, record.occurred_at, record.page_url, json.dumps(dict(record.properties)),
            record.received_at, record.visitor_id or None,
        )
        return RecordedActivity(row["lead_id"]) if row is not None else None

    async def lock_touched_lead(self, session: AsyncSession, lead_id: str) -> str:
        """The canonical lead of a touched lead id, locked."""
        found: str = await (await driver_connection(session)).fetchval(LOCK_TOUCHED_LEAD, lead_id)
        return found

    async def load_lead(self, session: AsyncSession, lead_id: str) -> LeadState:
        found = await (await driver_connection(session)).fetchrow(LOAD_LEAD, lead_id)
        assert found is not None  # the outer join always yields one row
        activities = [
            domain.Activity(activity_id, activity_type, occurred_at, page_url, dict(properties or {}))
            for activity_id, activity_type, occurred_at, page_url, properties in found["activities"]
        ]
        lead = _scored_lead(found) if found["lead_id"] is not None else None
        return LeadState(lead, found["active_model_id"], activities)

    async def save_score(self, session: AsyncSession, write: ScoreWrite) -> None:
        conn = await driver_connection(session)
        if write.new_lead:
            await conn.execute(INSERT_SCORE, *_score_params(write), write.correlation_id or write.lead_id,
                               write.captured_at)
        else:
            await conn.execute(UPDATE_SCORE, *_score_params(write))

    async def leads_due_for_sweep(
        self, session: AsyncSession, now: datetime, min_age: timedelta, active_model: str, limit: int
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

    # -- models --------------------------------------------------------------------------------

    async def model(self, session: AsyncSession, model_id: str) -> StoredModel | None:
        cached = self._models.get(model_id)
        if cached is not None:
            return cached
        row = await (await driver_connection(session)).fetchrow(
            "SELECT id, version, name, spec FROM scoring_model WHERE id = $1", model_id)
        if row is None:
            return None
        model = StoredModel(row["id"], row["version"], row["name"], ScoringModelSpec.model_validate(row["spec"]))
        self._models[model_id] = model
        return model

    async def active_model_id(self, session: AsyncSession) -> str | None:
        found: str | None = await (await driver_connection(session)).fetchval(SELECT_ACTIVE_MODEL_ID)
        return found

    async def active_model(self, session: AsyncSession) -> StoredModel:
        return await self.require_model(session, await self.active_model_id(session))

    async def require_model(self, session: AsyncSession, model_id: str | None) -> StoredModel:
        model = await self.model(session, model_id) if model_id else None
        if model is None:
            raise NoActiveModel("no scoring model is active")
        return model

    async def _serialize_versions(self, session: AsyncSession) -> None:
        # Version numbers and the activation log are written one writer at a time.
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": VERSION_LOCK})

    async def save_version(
        self, session: AsyncSession, spec: ScoringModelSpec, *, source_text: str | None, created_by: str | None
    ) -> str:
        await self._serialize_versions(session)
        version = int((await session.execute(
            select(func.coalesce(func.max(scoring_model.c.version), 0)))).scalar_one()) + 1
        model_id = f"{spec.name}.v{version}"
        await session.execute(
            insert(scoring_model).values(
                id=model_id, version=version, name=spec.name, description=spec.description,
                spec=spec.model_dump(mode="json"), source_text=source_text, created_by=created_by,
            )
        )
        return model_id

    async def activate(self, session: AsyncSession, model_id: str, *, by: str | None, now: datetime) -> None:
        await self._serialize_versions(session)
        exists = (await session.execute(select(scoring_model.c.id).where(scoring_model.c.id == model_id))).first()
        if exists is None:
            raise UnknownModel(model_id)
        await session.execute(insert(model_activation).values(model_id=model_id, activated_by=by, activated_at=now))

    async def rollback(self, session: AsyncSession, *, by: str | None, now: datetime) -> str:
        """Undo the latest activation; the model active before it is active again. Returns its id."""
        await self._serialize_versions(session)
        live = (
            await session.execute(
                select(model_activation.c.id, model_activation.c.model_id)
                .where(model_activation.c.rolled_back_at.is_(None))
                .order_by(model_activation.c.id.desc())
                .limit(2)
            )
        ).all()
        if len(live) < 2:
            raise NothingToRollBack("no earlier activation to roll back to")
        await session.execute(
            update(model_activation)
            .where(model_activation.c.id == live[0].id)
            .values(rolled_back_at=now, rolled_back_by=by)
        )
        return str(live[1].model_id)

    async def install_initial_model(
        self, session: AsyncSession, spec: ScoringModelSpec, source_text: str, now: datetime
    ) -> bool:
        """Install and activate ``spec`` when no model exists yet (first start, seed-demo); True when it did."""
        await self._serialize_versions(session)
        if (await session.execute(select(scoring_model.c.id).limit(1))).first() is not None:
            return False
        model_id = await self.save_version(session, spec, source_text=source_text, created_by="bootstrap")
        await self.activate(session, model_id, by="bootstrap", now=now)
        return True

    async def list_versions(self, session: AsyncSession) -> list[ModelVersion]:
        active_id, first_activation = await self._activation_facts(session)
        rows = (await session.execute(select(scoring_model).order_by(scoring_model.c.version.desc()))).all()
        return [_version(r, active_id, first_activation) for r in rows]

    async def version(self, session: AsyncSession, model_id: str) -> ModelVersion | None:
        row = (await session.execute(select(scoring_model).where(scoring_model.c.id == model_id))).first()
        if row is None:
            return None
        active_id, first_activation = await self._activation_facts(session)
        return _version(row, active_id, first_activation)

    async def active_version(self, session: AsyncSession) -> ModelVersion | None:
        active_id, _ = await self._activation_facts(session)
        return await self.version(session, active_id) if active_id else None

    async def source_text_of(self, session: AsyncSession, model_id: str) -> str | None:
        return (
            await session.execute(select(scoring_model.c.source_text).where(scoring_model.c.id == model_id))
        ).scalar_one_or_none()

    async def activation_log(self, session: AsyncSession) -> list[Activation]:
        rows = (await session.execute(select(model_activation).order_by(model_activation.c.id.desc()))).all()
        return [Activation(**r._mapping) for r in rows]

    async def _activation_facts(self, session: AsyncSession) -> tuple[str | None, dict[str, datetime]]:
        rows = (await session.execute(select(model_activation).order_by(model_activation.c.id))).all()
        first: dict[str, datetime] = {}
        active_id = None
        for r in rows:
            first.setdefault(r.model_id, r.activated_at)
            if r.rolled_back_at is None:
                active_id = r.model_id
        return active_id, first

    # -- reads ---------------------------------------------------------------------------------

    async def canonical_lead_id(self, session: AsyncSession, lead_id: str) -> str:
        found = (
            await session.execute(
                select(lead_identity.c.lead_id).where(lead_identity.c.kind == "lead", lead_identity.c.value == lead_id)
            )
        ).scalar_one_or_none()
        return str(found) if found is not None else lead_id

    async def scored_lead(self, session: AsyncSession, lead_id: str) -> ScoredLead | None:
        row = (await session.execute(select(lead_score).where(lead_score.c.lead_id == lead_id))).first()
        return _scored_lead(row._mapping) if row is not None else None

    async def activities_of(self, session: AsyncSession, lead_id: str) -> list[domain.Activity]:
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

    async def score_changes(self, session: AsyncSession, lead_id: str, limit: int) -> list[ScoreChange]:
        """The lead's published scores, newest first."""
        rows = (
            await session.execute(
                select(score_change).where(score_change.c.lead_id == lead_id).order_by(score_change.c.id.desc())
                .limit(limit)
            )
        ).all()
        return [
            ScoreChange(
                at=r.at, trigger=r.trigger, cause=r.cause, score=r.score, previous_score=r.previous_score,
                fit_grade=r.fit_grade, engagement_level=r.engagement_level, tier=r.tier, is_mql=r.is_mql,
                model_version=r.model_id, lifecycle_stage=r.lifecycle_stage, previous_stage=r.previous_stage,
                breakdown=[ScoreLine.model_validate(line) for line in r.breakdown],
            )
            for r in rows
        ]

    async def recent_leads(self, session: AsyncSession, limit: int) -> list[RecentLead]:
        """The leads scored last, newest first."""
        rows = (
            await session.execute(
                select(lead_score.c.lead_id, lead_score.c.enriched).order_by(lead_score.c.updated_at.desc())
                .limit(limit)
            )
        ).all()
        return [RecentLead(r.lead_id, LeadFields.model_validate(r.enriched)) for r in rows]
