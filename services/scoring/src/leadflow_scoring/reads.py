"""What the API shows about a lead's score: computed now (decay applied on read) and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import ScoreLine
from leadflow_scoring import domain, handlers
from leadflow_scoring.handlers import Scoring
from leadflow_scoring.tables import lead_identity, lead_score, score_change


class ScoreNow(BaseModel):
    score: float
    fit_points: float
    behavior_points: float
    fit_grade: str
    engagement_level: int
    tier: str
    is_mql: bool
    mql_reason: str | None = None
    model_version: str
    as_of: datetime
    breakdown: list[ScoreLine]


class ScoreChangePublic(BaseModel):
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


class LeadScorePublic(BaseModel):
    lead_id: str
    current: ScoreNow = Field(description="The score right now under the active model, decay applied")
    lifecycle_stage: str
    stage_changed_at: datetime
    mql_at: datetime | None
    last_published_score: float
    last_scored_at: datetime
    history: list[ScoreChangePublic] = Field(description="Every published score, newest first")


async def canonical_lead_id(session: AsyncSession, lead_id: str) -> str:
    found = (
        await session.execute(
            select(lead_identity.c.lead_id).where(lead_identity.c.kind == "lead", lead_identity.c.value == lead_id)
        )
    ).scalar_one_or_none()
    return str(found) if found is not None else lead_id


async def lead_score_view(
    session: AsyncSession, scoring: Scoring, lead_id: str, now: datetime, history_limit: int
) -> LeadScorePublic | None:
    lead_id = await canonical_lead_id(session, lead_id)
    row = (await session.execute(select(lead_score).where(lead_score.c.lead_id == lead_id))).first()
    if row is None:
        return None
    model = await scoring.models.active(session)
    activities = await handlers.activities_of(session, lead_id)
    result = domain.score_lead(model.spec, domain.lead_facts(row.enriched), activities, now)
    changes = (
        await session.execute(
            select(score_change)
            .where(score_change.c.lead_id == lead_id)
            .order_by(score_change.c.id.desc())
            .limit(history_limit)
        )
    ).all()
    return LeadScorePublic(
        lead_id=lead_id,
        current=ScoreNow(
            score=result.score, fit_points=result.fit_points, behavior_points=result.behavior_points,
            fit_grade=result.fit_grade, engagement_level=result.engagement_level, tier=result.tier,
            is_mql=result.is_mql, mql_reason=result.mql_reason, model_version=model.id, as_of=now,
            breakdown=list(result.lines),
        ),
        lifecycle_stage=row.lifecycle_stage,
        stage_changed_at=row.stage_changed_at,
        mql_at=row.mql_at,
        last_published_score=row.score,
        last_scored_at=row.scored_at,
        history=[_change(c) for c in changes],
    )


def _change(row: Any) -> ScoreChangePublic:
    return ScoreChangePublic(
        at=row.at, trigger=row.trigger, cause=row.cause, score=row.score, previous_score=row.previous_score,
        fit_grade=row.fit_grade, engagement_level=row.engagement_level, tier=row.tier, is_mql=row.is_mql,
        model_version=row.model_id, lifecycle_stage=row.lifecycle_stage, previous_stage=row.previous_stage,
        breakdown=[ScoreLine.model_validate(line) for line in row.breakdown],
    )

