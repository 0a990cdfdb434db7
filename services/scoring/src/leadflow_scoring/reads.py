"""What the API shows about a lead's score: computed now (decay applied on read) and its history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import ScoreLine
from leadflow_scoring import domain
from leadflow_scoring.store import ScoreChange, ScoringStore


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


class ScoreChangePublic(ScoreChange):
    pass


class LeadScorePublic(BaseModel):
    lead_id: str
    current: ScoreNow = Field(description="The score right now under the active model, decay applied")
    lifecycle_stage: str
    stage_changed_at: datetime
    mql_at: datetime | None
    last_published_score: float
    last_scored_at: datetime
    history: list[ScoreChangePublic] = Field(description="Every published score, newest first")


async def lead_score_view(
    session: AsyncSession, store: ScoringStore, lead_id: str, now: datetime, history_limit: int
) -> LeadScorePublic | None:
    lead_id = await store.canonical_lead_id(session, lead_id)
    lead = await store.scored_lead(session, lead_id)
    if lead is None:
        return None
    model = await store.active_model(session)
    activities = await store.activities_of(session, lead_id)
    result = domain.score_lead(model.spec, domain.lead_facts(lead.enriched), activities, now)
    changes = await store.score_changes(session, lead_id, history_limit)
    return LeadScorePublic(
        lead_id=lead_id,
        current=ScoreNow(
            score=result.score, fit_points=result.fit_points, behavior_points=result.behavior_points,
            fit_grade=result.fit_grade, engagement_level=result.engagement_level, tier=result.tier,
            is_mql=result.is_mql, mql_reason=result.mql_reason, model_version=model.id, as_of=now,
            breakdown=list(result.lines),
        ),
        lifecycle_stage=lead.lifecycle_stage,
        stage_changed_at=lead.stage_changed_at,
        mql_at=lead.mql_at,
        last_published_score=lead.score,
        last_scored_at=lead.scored_at,
        history=[ScoreChangePublic.model_validate(change, from_attributes=True) for change in changes],
    )
