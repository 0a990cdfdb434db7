"""``GET /v1/leads``: find any lead by who it is, who has it, where it came from and when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from leadflow_contracts.sla_policy import Tier
from leadflow_kit.auth import require_scope
from leadflow_kit.errors import invalid_field
from leadflow_sla import search
from leadflow_sla.bootstrap import DepsDep
from leadflow_sla.domain import FUNNEL_RANK
from leadflow_sla.identity import normalized_email
from leadflow_sla.search_store import search_leads

search_router = APIRouter(tags=["leads"])

FunnelStage = Literal["captured", "mql", "accepted", "sql", "opportunity", "converted"]
Value = Annotated[str | None, Query(min_length=1, max_length=255)]

_EXAMPLE_ID = "0d9c3c0e-8a53-4f1e-9a57-3f1f3c2b7a10"
_EXAMPLE_LEAD: dict[str, Any] = {
    "lead_id": _EXAMPLE_ID, "email": "ada.park@initech.example", "name": "Ada Park",
    "company": "Initech", "stage": "mql", "tier": "hot", "score": 82.0, "owner": "rep-bob", "team": "emea",
    "queue": None, "source": "google", "campaign": "spring", "form": "demo-request",
    "captured_at": "2026-11-23T09:00:00Z", "sla": {"state": "running", "breach_count": 0},
}


class FoundLeadSla(BaseModel):
    state: str = Field(description="running | breached | met | none (no first-touch clock ran yet)")
    breach_count: int


class FoundLeadPublic(BaseModel):
    lead_id: str
    email: str | None
    name: str | None
    company: str | None
    stage: str = Field(description="The furthest funnel stage the lead reached")
    tier: str | None
    score: float | None
    owner: str | None = Field(description="The owning rep's id")
    team: str | None
    queue: str | None = Field(default=None, description="The queue the lead waits in, when it has no rep")
    source: str | None
    campaign: str | None
    form: str | None
    captured_at: datetime
    sla: FoundLeadSla


class LeadPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "leads": [_EXAMPLE_LEAD],
        "next_cursor": search.encode_cursor("-captured_at", datetime(2026, 11, 23, 9, tzinfo=UTC), _EXAMPLE_ID),
    }]})

    leads: list[FoundLeadPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` (with the same filters and sort) for the next "
                                                "page; null on the last")


@search_router.get(
    "/v1/leads",
    response_model=LeadPage,
    dependencies=[Depends(require_scope("leads:read"))],
    summary="Find leads by email, company, owner, team, queue, stage, tier, source, campaign, form and capture "
            "date; sorted, a page at a time",
)
async def find_leads(
    deps: DepsDep,
    email: Annotated[str | None, Query(min_length=1, max_length=320,
                                       description="Exact, as enrichment normalizes it (case does not matter)")] = None,
    company: Annotated[str | None, Query(min_length=1, max_length=255,
                                         description="Exact, case does not matter")] = None,
    owner: Annotated[str | None, Query(min_length=1, max_length=64, description="The owning rep's id")] = None,
    team: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    queue: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    stage: FunnelStage | None = None,
    tier: Tier | None = None,
    source: Value = None,
    campaign: Value = None,
    form: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    captured_from: Annotated[datetime | None, Query(description="Inclusive")] = None,
    captured_to: Annotated[datetime | None, Query(description="Exclusive")] = None,
    sort: search.Sort = "-captured_at",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1024, description="`next_cursor` of the page before")] = None,
) -> LeadPage:
    texts = {"email": email, "company": company, "owner": owner, "team": team, "queue": queue, "source": source,
             "campaign": campaign, "form": form, "cursor": cursor}
    for name, value in texts.items():
        if value is not None and "\x00" in value:
            raise invalid_field(name, "invalid", "NUL characters are not allowed")
    filters: dict[str, Any] = {name: value for name, value in (
        ("owner", owner), ("team", team), ("queue", queue), ("tier", tier), ("source", source),
        ("campaign", campaign), ("form", form)) if value is not None}
    if email is not None:
        filters["email"] = _searched_email(email)
    if company is not None:
        filters["company"] = company.lower()
    if stage is not None:
        filters["stage"] = FUNNEL_RANK[stage]
    start, end = _utc(captured_from), _utc(captured_to)
    if start is not None and end is not None and start >= end:
        raise invalid_field("captured_from", "invalid", "captured_from must be before captured_to")
    after = search.decode_cursor(cursor, sort) if cursor is not None else None
    if cursor is not None and after is None:
        raise invalid_field("cursor", "invalid", "pass a next_cursor as it was given, with the same sort")
    query = search.LeadQuery(filters, start, end, sort, after, limit)
    async with deps.platform.db.transaction() as session:
        found = await search_leads(session, query)
    last = found[-1] if len(found) == limit else None
    return LeadPage(leads=[FoundLeadPublic.model_validate(search.item(f)) for f in found],
                    next_cursor=search.encode_cursor(sort, search.sort_key(last, sort), last.lead_id) if last else None)


def _searched_email(email: str) -> str:
    """As enrichment stores it; an address it would not store (a special-use domain) is still searched for,
    lowercased, and finds nothing rather than being refused. Only what is no address at all is a 422."""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        raise invalid_field("email", "invalid", "not an email address")
    return normalized_email(email) or email.strip().lower()


def _utc(value: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC, the zone every timestamp here is kept in.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
