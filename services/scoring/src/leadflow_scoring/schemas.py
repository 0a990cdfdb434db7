"""Request and response bodies of the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from leadflow_contracts import AccountMatch, Attribution, DataQuality, LeadProfile, ScoreLine
from leadflow_kit.errors import FieldError
from leadflow_scoring.model import default_model
from leadflow_scoring.store import ModelVersion


class ScoringModelPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "b2b-saas-default.v1", "version": 1, "name": "b2b-saas-default",
        "description": "Default model for a B2B SaaS company (mid-market and enterprise, NA and Europe first)",
        "active": True, "created_at": "2026-11-01T09:00:00Z", "created_by": "bootstrap",
        "first_activated_at": "2026-11-01T09:00:00Z", "spec": default_model().model_dump(mode="json")}]})

    id: str = Field(description="The version id that travels on lead.scored as model_version")
    version: int
    name: str
    description: str
    active: bool
    created_at: datetime
    created_by: str | None
    first_activated_at: datetime | None
    spec: dict[str, Any]


def model_public(version: ModelVersion) -> ScoringModelPublic:
    return ScoringModelPublic(
        id=version.id, version=version.version, name=version.name, description=version.description,
        active=version.active, created_at=version.created_at, created_by=version.created_by,
        first_activated_at=version.activated_at, spec=version.spec,
    )


class ValidationReport(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"valid": True, "name": "b2b-saas-default", "rules": {"fit": 12, "behavior": 9, "negative": 3},
         "errors": []},
        {"valid": False, "name": "b2b-saas-default", "rules": {},
         "errors": [{"field": "fit.0.points", "code": "greater_than_equal",
                     "message": "Input should be greater than or equal to -100"}]},
    ]})

    valid: bool
    name: str | None = None
    rules: dict[str, int] = Field(default_factory=dict)
    errors: list[FieldError] = Field(default_factory=list)


class ActivityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    activity_id: str | None = None
    activity_type: str
    occurred_at: datetime
    page_url: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)


class DryRunLead(BaseModel):
    """A lead as lead.enriched describes it, plus what it did."""

    model_config = ConfigDict(extra="forbid")

    lead_id: str | None = None
    form_key: str | None = Field(default=None, description="The form filled in; counted as a form_submission")
    submitted_at: datetime | None = Field(default=None, description="When; default now")
    profile: LeadProfile = Field(default_factory=LeadProfile)
    account: AccountMatch | None = None
    quality: DataQuality = Field(default_factory=lambda: DataQuality(score=50))
    attribution: Attribution = Field(default_factory=Attribution)
    custom_fields: dict[str, str] = Field(default_factory=dict)
    duplicate_of: str | None = None
    partial: bool = False
    activities: list[ActivityIn] = Field(default_factory=list)


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"last_n": 50},
        {"leads": [{"form_key": "demo-request",
                    "profile": {"email": "ada@example.com", "job_title": "VP Engineering", "seniority": "vp",
                                "industry": "software", "employee_count": 800, "country": "US"},
                    "activities": [{"activity_type": "pricing_page_view", "occurred_at": "2026-11-23T09:00:00Z",
                                    "page_url": "https://www.example.com/pricing"}]}]},
    ]})

    model: dict[str, Any] | str | None = Field(
        default=None, description="The draft (object, or YAML/JSON text); omit when dry-running a saved version"
    )
    leads: list[DryRunLead] | None = Field(default=None, description="Leads to score; or use last_n")
    last_n: int | None = Field(default=None, ge=1, description="Score the N most recently scored real leads")


class ScoreSnapshot(BaseModel):
    score: float
    fit_grade: str
    engagement_level: int
    tier: str
    is_mql: bool
    breakdown: list[ScoreLine] | None = None


class DryRunLeadResult(BaseModel):
    lead_id: str
    current: ScoreSnapshot
    draft: ScoreSnapshot
    score_change: float
    changes: list[str]


class DryRunSummary(BaseModel):
    leads: int
    changed: int
    mql_current: int
    mql_draft: int
    tiers_current: dict[str, int]
    tiers_draft: dict[str, int]
    average_score_change: float


_SNAPSHOT: dict[str, JsonValue] = {"score": 52.0, "fit_grade": "B", "engagement_level": 2, "tier": "warm", "is_mql": True}


class DryRunResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "current_model": "b2b-saas-default.v1", "draft_model": "b2b-saas-default", "as_of": "2026-11-23T09:00:00Z",
        "summary": {"leads": 1, "changed": 1, "mql_current": 1, "mql_draft": 0,
                    "tiers_current": {"warm": 1}, "tiers_draft": {"cold": 1}, "average_score_change": -12.0},
        "leads": [{"lead_id": "0d9c3c0e-8a53-4f1e-9a57-3f1f3c2b7a10", "current": _SNAPSHOT,
                   "draft": {**_SNAPSHOT, "score": 40.0, "tier": "cold", "is_mql": False},
                   "score_change": -12.0, "changes": ["stops being an MQL", "tier warm -> cold", "score 52 -> 40"]}],
    }]})

    current_model: str
    draft_model: str
    as_of: datetime
    summary: DryRunSummary
    leads: list[DryRunLeadResult]


class ActivationPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "active_model": "b2b-saas-default.v3", "previous_model": "b2b-saas-default.v2",
        "activated_at": "2026-11-23T09:00:00Z"}]})

    active_model: str
    previous_model: str | None
    activated_at: datetime
