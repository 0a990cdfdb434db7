"""Every SQL statement of scoring, behind named methods that take the transaction first and take and
return typed values.

The consumer paths run plain SQL on the transaction's asyncpg connection (``driver_connection``):
a SQLAlchemy statement costs several times the CPU of the same statement through asyncpg
(docs/performance.md). A batch of events takes its locks in one statement, writes what its events bring
in one, reads its leads (rows, active model, activities) in one and stores the new scores in one, whatever
its size. The admin queries (model versions, reads, dry runs) use SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import LeadEnriched, ScoreLine
from leadflow_kit.db import driver_connection
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

# pydantic-core writes the lines' JSON in one pass: a fifth of the time of model_dump, then json.dumps
# (7 against 36 us for nine lines); PostgreSQL reads either the same into jsonb.
_SCORE_LINES = TypeAdapter(tuple[ScoreLine, ...])


@dataclass(frozen=True)
class StoredModel:
    id: str
    version: int
    name: str
    spec: ScoringModelSpec

    @cached_property
    def compiled(self) -> domain.CompiledModel:
        """The spec compiled for scoring, once for the version (a version never changes): what every re-score under
        this version runs."""
        return domain.CompiledModel(self.spec)


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

    @cached_property
    def breakdown(self) -> str:
        """The explanation lines as JSON, written once: a published write's go into its lead's row and into its
        score_change row."""
        return _SCORE_LINES.dump_json(self.result.lines).decode()


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

# Everything a batch's re-scores read, in one statement: the active model and, for each lead in the order
# given, its row (all NULL for a new lead) and its activities (newest first, as one array of records).
LOAD_LEADS = f"""
SELECT
    ({SELECT_ACTIVE_MODEL_ID}) AS active_model_id,
    l.wanted,
    ARRAY(
        SELECT ROW(a.activity_id, a.activity_type, a.occurred_at, a.page_url, a.properties)
        FROM activity AS a
        WHERE a.lead_id = l.wanted
        ORDER BY a.occurred_at DESC
        LIMIT $2::int
    ) AS activities,
    {", ".join(f"s.{column}" for column in _LEAD_COLUMNS.split(", "))}
FROM unnest($1::text[]) WITH ORDINALITY AS l(wanted, n)
LEFT JOIN lead_score AS s ON s.lead_id = l.wanted
ORDER BY l.n
"""

# A batch's scores in one statement: each lead's row as its last write left it (created by its first write
# when that one made a new lead), and a score_change row, in the order written, for each write that
# published an event. ``enriched``/``email`` change only with a form fill; ``mql_at`` only on becoming an MQL.
SAVE_SCORES = """
WITH written AS (
    SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::text[], $6::int[], $7::text[],
                         $8::bool[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[],
                         $14::timestamptz[], $15::text[], $16::text[], $17::text[], $18::timestamptz[],
                         $19::timestamptz[], $20::bool[])
        AS w(lead_id, score, fit_points, behavior_points, fit_grade, engagement_level, tier, is_mql, model_id,
             breakdown, lifecycle_stage, stage_changed_at, mql_at, scored_at, enriched, email, correlation_id,
             captured_at, created_at, created)
), created AS (
    INSERT INTO lead_score (lead_id, score, fit_points, behavior_points, fit_grade, engagement_level, tier, is_mql,
                            model_id, breakdown, lifecycle_stage, stage_changed_at, mql_at, scored_at, updated_at,
                            enriched, email, correlation_id, captured_at, created_at)
    SELECT lead_id, score, fit_points, behavior_points, fit_grade, engagement_level, tier, is_mql, model_id,
           breakdown::jsonb, lifecycle_stage, stage_changed_at, mql_at, scored_at, scored_at, enriched::jsonb, email,
           correlation_id, captured_at, created_at
    FROM written WHERE created
), updated AS (
    UPDATE lead_score AS s
    SET score = w.score, fit_points = w.fit_points, behavior_points = w.behavior_points, fit_grade = w.fit_grade,
        engagement_level = w.engagement_level, tier = w.tier, is_mql = w.is_mql, model_id = w.model_id,
        breakdown = w.breakdown::jsonb, lifecycle_stage = w.lifecycle_stage, stage_changed_at = w.stage_changed_at,
        mql_at = COALESCE(w.mql_at, s.mql_at), scored_at = w.scored_at, updated_at = w.scored_at,
        enriched = COALESCE(w.enriched::jsonb, s.enriched),
        email = CASE WHEN w.enriched IS NULL THEN s.email ELSE w.email END
    FROM written AS w
    WHERE NOT w.created AND s.lead_id = w.lead_id
)
INSERT INTO score_change (lead_id, event_id, at, trigger, cause, score, previous_score, fit_grade, engagement_level,
                          tier, is_mql, model_id, breakdown, lifecycle_stage, previous_stage)
SELECT lead_id, event_id, at, trigger, cause, score, previous_score, fit_grade, engagement_level, tier, is_mql,
       model_id, breakdown::jsonb, lifecycle_stage, previous_stage
FROM unnest($21::text[], $22::text[], $23::timestamptz[], $24::text[], $25::text[], $26::float8[], $27::float8[],
            $28::text[], $29::int[], $30::text[], $31::bool[], $32::text[], $33::text[], $34::text[], $35::text[])
    WITH ORDINALITY AS c(lead_id, event_id, at, trigger, cause, score, previous_score, fit_grade, engagement_level,
                         tier, is_mql, model_id, breakdown, lifecycle_stage, previous_stage, n)
ORDER BY c.n
"""

# A batch's form fills' writes before scoring: the leads' identities (the first fill naming one keeps it), the
# fills themselves as activity, and crediting the activity that waited for these leads, each to the first
# fill (in the batch's order) it matches, as one fill after another would. The form rows are born credited,
# so the UPDATE, which sees the statement's starting snapshot, never meets them. Returns the activity rows
# this statement wrote: the forms it kept and the waiting activity it credited, each with its fill's position.
RECORD_FORM_FILLS = """
WITH fill AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                         $7::timestamptz[]) WITH ORDINALITY
        AS f(lead_id, captured_lead_id, email, visitor_id, form_key, submitted_at, received_at, n)
), identity AS (
    INSERT INTO lead_identity (kind, value, lead_id)
    SELECT kind, value, lead_id FROM unnest($8::text[], $9::text[], $10::text[]) WITH ORDINALITY
        AS i(kind, value, lead_id, n)
    ORDER BY i.n
    ON CONFLICT DO NOTHING
), form AS (
    INSERT INTO activity (activity_id, lead_id, activity_type, occurred_at, properties, received_at, credited_at)
    SELECT 'form:' || captured_lead_id, lead_id, $11::text, submitted_at, jsonb_build_object('form_key', form_key),
           received_at, received_at
    FROM fill ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING activity_id
), waiting AS (
    SELECT DISTINCT ON (activity_id) activity_id, lead_id, received_at, n
    FROM (
        SELECT a.activity_id, f.lead_id, f.received_at, f.n FROM fill AS f
        JOIN activity AS a ON a.lead_id IS NULL AND a.wanted_lead_id IN (f.lead_id, f.captured_lead_id)
        UNION ALL
        SELECT a.activity_id, f.lead_id, f.received_at, f.n FROM fill AS f
        JOIN activity AS a ON a.lead_id IS NULL AND a.email = f.email
        UNION ALL
        SELECT a.activity_id, f.lead_id, f.received_at, f.n FROM fill AS f
        JOIN activity AS a ON a.lead_id IS NULL AND a.visitor_id = f.visitor_id
    ) AS matched
    ORDER BY activity_id, n
), credited AS (
    UPDATE activity SET lead_id = w.lead_id, credited_at = w.received_at
    FROM waiting AS w WHERE activity.activity_id = w.activity_id
    RETURNING activity.activity_id, w.n
)
SELECT activity_id, NULL::bigint AS n FROM form
UNION ALL
SELECT activity_id, n FROM credited
"""

# A batch's activities, each kept once (the first of an id the batch repeats), credited to the lead its
# identities name (lead id, then email, then visitor: a visitor an earlier activity of the batch made known
# counts, as one by one), with the visitors they made known, and the locks of those leads (in the one order
# every lead lock is taken in, after the identity locks the handler holds). The statement's snapshot only
# reads identities those locks protect; what the leads' locks guard is read by the next statement. Returns,
# for each activity kept now, its position and its lead (NULL while it waits for one).
RECORD_ACTIVITIES = """
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                         $7::text[], $8::text[], $9::timestamptz[]) WITH ORDINALITY
        AS g(activity_id, wanted_lead_id, email, visitor_id, activity_type, occurred_at, page_url, properties,
             received_at, n)
), fresh AS MATERIALIZED (
    SELECT DISTINCT ON (g.activity_id) g.*,
           COALESCE((SELECT lead_id FROM lead_identity WHERE kind = 'lead' AND value = NULLIF(g.wanted_lead_id, '')),
                    (SELECT lead_id FROM lead_identity WHERE kind = 'email' AND value = NULLIF(g.email, '')))
               AS named_lead_id,
           (SELECT lead_id FROM lead_identity WHERE kind = 'visitor' AND value = NULLIF(g.visitor_id, ''))
               AS visitor_lead_id
    FROM given AS g
    WHERE NOT EXISTS (SELECT 1 FROM activity AS a WHERE a.activity_id = g.activity_id)
    ORDER BY g.activity_id, g.n
), found AS MATERIALIZED (
    SELECT f.*, COALESCE(f.named_lead_id, f.visitor_lead_id, (
               SELECT e.named_lead_id FROM fresh AS e
               WHERE e.visitor_id = NULLIF(f.visitor_id, '') AND e.named_lead_id IS NOT NULL AND e.n < f.n
               ORDER BY e.n LIMIT 1)) AS lead_id
    FROM fresh AS f
), recorded AS (
    INSERT INTO activity (activity_id, lead_id, wanted_lead_id, email, visitor_id, activity_type, occurred_at,
                          page_url, properties, received_at, credited_at)
    SELECT activity_id, lead_id, wanted_lead_id, email, visitor_id, activity_type, occurred_at, page_url,
           properties::jsonb, received_at, CASE WHEN lead_id IS NOT NULL THEN received_at END
    FROM found ORDER BY n
    ON CONFLICT DO NOTHING
), visitor AS (
    INSERT INTO lead_identity (kind, value, lead_id)
    SELECT 'visitor', visitor_id, lead_id FROM found
    WHERE lead_id IS NOT NULL AND NULLIF(visitor_id, '') IS NOT NULL
    ORDER BY n
    ON CONFLICT DO NOTHING
), locked AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended('row:' || lead_id, 0))
    FROM (SELECT DISTINCT lead_id FROM found WHERE lead_id IS NOT NULL) AS leads
    ORDER BY lead_id COLLATE "C"
)
SELECT n, lead_id FROM found WHERE (SELECT count(*) FROM locked) >= 0
"""

# Touched leads (the canonical one when the touched id was a duplicate fill), in the order given, and their
# locks, in the one order every lead lock is taken in. The snapshot only reads identities the handler's
# locks protect.
LOCK_TOUCHED_LEADS = """
WITH touched AS MATERIALIZED (
    SELECT t.n, COALESCE((SELECT lead_id FROM lead_identity WHERE kind = 'lead' AND value = t.id), t.id) AS lead_id
    FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n)
), locked AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended('row:' || lead_id, 0))
    FROM (SELECT DISTINCT lead_id FROM touched) AS leads
    ORDER BY lead_id COLLATE "C"
)
SELECT lead_id FROM touched WHERE (SELECT count(*) FROM locked) >= 0 ORDER BY n
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


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as the parallel arrays ``unnest`` takes (``width`` empty ones for no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _lead_state(row: _Columns) -> LeadState:
    activities = [
        domain.Activity(activity_id, activity_type, occurred_at, page_url, dict(properties or {}))
        for activity_id, activity_type, occurred_at, page_url, properties in row["activities"]
    ]
    lead = _scored_lead(row) if row["lead_id"] is not None else None
    return LeadState(lead, row["active_model_id"], activities)


def scored_after(lead: ScoredLead | None, write: ScoreWrite) -> ScoredLead:
    """The lead's row once ``write`` is stored over ``lead`` (None: the write creates it), as ``SAVE_SCORES``
    leaves it: what a later event of the same batch reads."""
    result = write.result
    enriched = LeadFields.of(write.enriched) if write.enriched is not None else None
    if lead is None:
        assert enriched is not None, "only a form fill creates a lead"
        return ScoredLead(
            lead_id=write.lead_id, enriched=enriched, correlation_id=write.correlation_id or write.lead_id,
            captured_at=write.captured_at, score=result.score, behavior_points=result.behavior_points,
            fit_grade=result.fit_grade, engagement_level=result.engagement_level, tier=result.tier,
            is_mql=result.is_mql, model_id=write.model_id, lifecycle_stage=write.stage,
            stage_changed_at=write.stage_changed_at, mql_at=write.mql_at, scored_at=write.scored_at)
    return replace(
        lead, enriched=enriched or lead.enriched, score=result.score, behavior_points=result.behavior_points,
        fit_grade=result.fit_grade, engagement_level=result.engagement_level, tier=result.tier,
        is_mql=result.is_mql, model_id=write.model_id, lifecycle_stage=write.stage,
        stage_changed_at=write.stage_changed_at, mql_at=write.mql_at or lead.mql_at, scored_at=write.scored_at)


def _lead_row(writes: Sequence[ScoreWrite]) -> tuple[Any, ...]:
    """A lead's ``lead_score`` row as a batch's writes of it leave it ($1-$20 of ``SAVE_SCORES``): what the last
    wrote, the last MQL time and form fill any of them brought, created by the first when it made a new lead."""
    first, last = writes[0], writes[-1]
    result = last.result
    enriched = next((write.enriched for write in reversed(writes) if write.enriched is not None), None)
    mql_at = next((write.mql_at for write in reversed(writes) if write.mql_at is not None), None)
    return (
        last.lead_id, result.score, result.fit_points, result.behavior_points, result.fit_grade,
        result.engagement_level, result.tier, result.is_mql, last.model_id, last.breakdown, last.stage,
        last.stage_changed_at, mql_at, last.scored_at,
        enriched.model_dump_json() if enriched is not None else None,
        domain.email_key(enriched.profile.email) if enriched is not None else None,
        first.correlation_id or first.lead_id, first.captured_at, first.scored_at, first.new_lead,
    )


def _change_row(write: ScoreWrite) -> tuple[Any, ...]:
    """The score_change row explaining a published event ($21-$35 of ``SAVE_SCORES``)."""
    result = write.result
    return (
        write.lead_id, write.event_id, write.scored_at, write.trigger, write.cause, result.score,
        write.previous_score, result.fit_grade, result.engagement_level, result.tier, result.is_mql,
        write.model_id, write.breakdown, write.stage, write.previous_stage,
    )


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

    async def record_form_fills(self, session: AsyncSession, fills: Sequence[FormFill]) -> list[set[str]]:
        """Remember who the leads are, keep the fills as activity, credit what waited for the leads; returns,
        for each fill, the activities it brought to its lead (its form, what it credited)."""
        identity_rows = [(kind, value, fill.lead_id) for fill in fills for kind, value in zip(*identities(
            ("lead", fill.lead_id), ("lead", fill.captured_lead_id), ("email", fill.email),
            ("visitor", fill.visitor_id)), strict=True)]
        rows = await (await driver_connection(session)).fetch(
            RECORD_FORM_FILLS, *_columns([(fill.lead_id, fill.captured_lead_id, fill.email, fill.visitor_id or None,
                                           fill.form_key, fill.submitted_at, fill.received_at) for fill in fills], 7),
            *_columns(identity_rows, 3), domain.FORM_SUBMISSION,
        )
        brought: list[set[str]] = [set() for _ in fills]
        position_of_form = {}
        for position, fill in reversed(list(enumerate(fills))):
            position_of_form[f"form:{fill.captured_lead_id}"] = position
        for row in rows:
            position = row["n"] - 1 if row["n"] is not None else position_of_form[row["activity_id"]]
            brought[position].add(row["activity_id"])
        return brought

    async def record_activities(self, session: AsyncSession,
                                records: Sequence[ActivityRecord]) -> list[RecordedActivity | None]:
        """Keep each activity once, credited to the lead its identities name (a visitor an earlier activity of
        the batch made known counts), and take the locks of those leads; None for an activity kept before (or
        earlier in the batch)."""
        rows = await (await driver_connection(session)).fetch(RECORD_ACTIVITIES, *_columns([(
            record.activity_id, record.lead_id, record.email, record.visitor_id, record.activity_type,
            record.occurred_at, record.page_url, json.dumps(dict(record.properties)), record.received_at,
        ) for record in records], 9))
        kept = {row["n"] - 1: RecordedActivity(row["lead_id"]) for row in rows}
        return [kept.get(position) for position in range(len(records))]

    async def lock_touched_leads(self, session: AsyncSession, lead_ids: Sequence[str]) -> list[str]:
        """The canonical lead of each touched lead id, in order, locked."""
        rows = await (await driver_connection(session)).fetch(LOCK_TOUCHED_LEADS, list(lead_ids))
        return [row["lead_id"] for row in rows]

    async def load_lead(self, session: AsyncSession, lead_id: str) -> LeadState:
        return (await self.load_leads(session, [lead_id]))[lead_id]

    async def load_leads(self, session: AsyncSession, lead_ids: Sequence[str],
                         max_activities: int = MAX_ACTIVITIES_PER_LEAD) -> dict[str, LeadState]:
        """Each lead's state, with at most ``max_activities`` of its activities (newest first)."""
        wanted = list(dict.fromkeys(lead_ids))
        rows = await (await driver_connection(session)).fetch(LOAD_LEADS, wanted, max_activities)
        return {row["wanted"]: _lead_state(row) for row in rows}

    async def save_scores(self, session: AsyncSession, writes: Sequence[ScoreWrite]) -> None:
        """The writes of a batch, in the order they were made, in one statement."""
        if not writes:
            return
        by_lead: dict[str, list[ScoreWrite]] = {}
        for write in writes:
            by_lead.setdefault(write.lead_id, []).append(write)
        leads = [_lead_row(of_lead) for of_lead in by_lead.values()]
        changes = [_change_row(write) for write in writes if write.event_id is not None]
        await (await driver_connection(session)).execute(SAVE_SCORES, *_columns(leads, 20), *_columns(changes, 15))

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
