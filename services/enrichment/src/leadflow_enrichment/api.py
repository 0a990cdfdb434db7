"""The enriched-lead read: a lead as enrichment made it (leads:read)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from leadflow_contracts import AccountMatch, DataQuality, LeadContact, LeadProfile
from leadflow_enrichment.bootstrap import DepsDep
from leadflow_enrichment.store import LeadRecord
from leadflow_kit.auth import require_scope

leads_router = APIRouter(prefix="/v1/leads", tags=["leads"])


class FieldComparison(BaseModel):
    field: str
    original: str | None
    normalized: Any


class FillPublic(BaseModel):
    captured_lead_id: str
    form_key: str
    submitted_at: datetime
    duplicate: bool
    original: LeadContact


LEAD_EXAMPLE: dict[str, Any] = {
    "lead_id": "0f9c2f1e-6d1a-4c61-9a57-3f8e2b0c7d11", "form_key": "demo",
    "original": {"email": "Ada@ACME.com", "first_name": "ada", "last_name": "LOVELACE", "phone": "(415) 555-2671",
                 "company": "Acme, Inc.", "job_title": "VP Marketing", "country": "USA"},
    "profile": {"email": "ada@acme.com", "email_domain": "acme.com", "email_type": "corporate",
                "is_role_address": False, "first_name": "Ada", "last_name": "Lovelace", "phone_e164": "+14155552671",
                "company": "Acme", "company_domain": "acme.com", "job_title": "VP Marketing", "seniority": "vp",
                "function": "marketing", "country": "US", "industry": "Software", "employee_count": 1200},
    "fields": [{"field": "phone→phone_e164", "original": "(415) 555-2671", "normalized": "+14155552671"}],
    "account": {"account_id": "acct-acme", "name": "Acme, Inc.", "domain": "acme.com", "method": "domain",
                "confidence": 1.0, "owner_rep_id": "rep-ada", "tier": "enterprise"},
    "quality": {"score": 100, "reasons": []}, "partial": False, "partial_reasons": [], "fill_count": 1,
    "fills": [{"captured_lead_id": "0f9c2f1e-6d1a-4c61-9a57-3f8e2b0c7d11", "form_key": "demo",
               "submitted_at": "2026-11-23T09:00:00Z", "duplicate": False, "original": {"email": "Ada@ACME.com"}}],
    "enrichment_ms": 4.2, "first_submitted_at": "2026-11-23T09:00:00Z", "last_submitted_at": "2026-11-23T09:00:00Z",
    "updated_at": "2026-11-23T09:00:00Z",
}


class EnrichedLeadPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [LEAD_EXAMPLE]})

    lead_id: str
    form_key: str
    original: LeadContact
    profile: LeadProfile
    fields: list[FieldComparison] = Field(description="Each typed field beside what enrichment made of it")
    account: AccountMatch | None
    quality: DataQuality
    partial: bool
    partial_reasons: list[str]
    fill_count: int
    fills: list[FillPublic]
    enrichment_ms: float | None
    first_submitted_at: datetime
    last_submitted_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, lead: LeadRecord) -> EnrichedLeadPublic:
        original, profile = lead.original, lead.profile
        return cls(
            lead_id=lead.id, form_key=lead.form_key, original=original, profile=profile,
            fields=[FieldComparison(field=f"{typed}→{made}", original=getattr(original, typed),
                                    normalized=getattr(profile, made))
                    for typed, made in FIELD_PAIRS if getattr(original, typed) is not None],
            account=lead.account, quality=lead.quality, partial=lead.partial,
            partial_reasons=lead.partial_reasons, fill_count=lead.fill_count,
            fills=[FillPublic(captured_lead_id=f.captured_lead_id, form_key=f.form_key, submitted_at=f.submitted_at,
                              duplicate=f.duplicate, original=f.original) for f in lead.fills],
            enrichment_ms=lead.enrichment_ms, first_submitted_at=lead.first_submitted_at,
            last_submitted_at=lead.last_submitted_at, updated_at=lead.updated_at,
        )


# Which normalized field each typed field became.
FIELD_PAIRS = (
    ("email", "email"), ("first_name", "first_name"), ("last_name", "last_name"), ("phone", "phone_e164"),
    ("company", "company"), ("website", "company_domain"), ("job_title", "seniority"), ("job_title", "function"),
    ("country", "country"), ("state", "state"), ("city", "city"), ("industry", "industry"),
    ("employee_count", "employee_count"), ("annual_revenue", "annual_revenue"),
)


@leads_router.get("/{lead_id}", response_model=EnrichedLeadPublic, summary="A lead as enrichment made it",
                  description="Takes the canonical lead id or the id of any fill merged into it.",
                  responses={404: {"description": "No such lead",
                                   "content": {"application/json": {"example": {"detail": "no lead 'l-1'"}}}}},
                  dependencies=[Depends(require_scope("leads:read"))])
async def get_lead(lead_id: str, deps: DepsDep) -> EnrichedLeadPublic:
    async with deps.platform.db.transaction() as session:
        found = await deps.store.enriched_lead(session, lead_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no lead '{lead_id}'")
    return EnrichedLeadPublic.of(found)
