"""What the API shows about a lead's score: computed now (decay applied on read) and its history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, JsonValue
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


_LINES: list[JsonValue] = [
    {"rule_id": "fit.seniority.vp", "category": "fit", "points": 15.0, "reason": "seniority is vp"},
    {"rule_id": "fit.employees.mid-market", "category": "fit", "points": 10.0,
     "reason": "employee_count 800 is within 200..2000"},
    {"rule_id": "behavior.demo_requested", "category": "behavior", "points": 30.0,
     "reason": "demo_requested once (30 points each)"},
    {"rule_id": "decay", "category": "decay", "points": -3.0,
     "reason": "behavioral points fade with a 30-day half-life"},
]


class LeadScorePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "lead_id": "0d9c3c0e-8a53-4f1e-9a57-3f1f3c2b7a10",
        "current": {"score": 52.0, "fit_points": 25.0, "behavior_points": 27.0, "fit_grade": "B",
                    "engagement_level": 2, "tier": "warm", "is_mql": True,
                    "mql_reason": "score 52 ≥ 50", "model_version": "b2b-saas-default.v1",
                    "as_of": "2026-11-23T09:00:00Z", "breakdown": _LINES},
        "lifecycle_stage": "mql", "stage_changed_at": "2026-11-16T10:02:00Z", "mql_at": "2026-11-16T10:02:00Z",
        "last_published_score": 55.0, "last_scored_at": "2026-11-16T10:02:00Z",
        "history": [{"at": "2026-11-16T10:02:00Z", "trigger": "activity", "cause": "demo_requested",
                     "score": 55.0, "previous_score": 25.0, "fit_grade": "B", "engagement_level": 2, "tier": "warm",
                     "is_mql": True, "model_version": "b2b-saas-default.v1", "lifecycle_stage": "mql",
                     "previous_stage": "lead", "breakdown": _LINES[:3]}],
    }]})

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
    result = model.compiled.score(domain.lead_facts(lead.enriched), activities, now)
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
