"""Data-subject requests (GDPR articles 15 and 17): erase a person everywhere, export what is held.

Scopes ``privacy:write`` (erase) and ``privacy:read`` (status, export).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from leadflow_capture import handlers, privacy
from leadflow_capture.admin import AUTH_ERRORS
from leadflow_capture.bootstrap import Deps, DepsDep
from leadflow_kit.auth import require_scope
from leadflow_kit.errors import Problem
from leadflow_kit.privacy import MAX_LEAD_IDS, person_of
from leadflow_kit.uow import unit_of_work

router = APIRouter(prefix="/v1/admin/privacy", tags=["privacy (admin)"])

NAMES_NOBODY: dict[int | str, dict[str, Any]] = {
    422: {"description": "Neither an email nor a lead id", "model": Problem},
}
Email = Annotated[str | None, Query(max_length=320, description="The person's email (any case)")]
LeadIds = Annotated[list[str] | None, Query(max_length=MAX_LEAD_IDS, description="A lead id of the person")]


class ServiceErasure(BaseModel):
    status: Literal["pending", "completed"]
    rows_erased: int | None
    completed_at: datetime | None


class ErasurePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "erasure_id": "0e4c6f2a-1b3d-4e5f-9a8b-7c6d5e4f3a2b", "status": "completed",
        "lead_ids": ["5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4"],
        "requested_at": "2026-11-23T09:00:00Z", "completed_at": "2026-11-23T09:00:02Z",
        "services": {name: {"status": "completed", "rows_erased": rows, "completed_at": "2026-11-23T09:00:02Z"}
                     for name, rows in (("capture", 3), ("enrichment", 1), ("scoring", 4), ("routing", 2),
                                        ("sla", 6))}}]})

    erasure_id: str
    status: Literal["pending", "completed"]
    lead_ids: list[str]
    requested_at: datetime
    completed_at: datetime | None
    services: dict[str, ServiceErasure]

    @classmethod
    def of(cls, erasure: privacy.Erasure) -> ErasurePublic:
        """Every service's part: its answer, or pending until it answers."""
        services = {
            name: ServiceErasure(status="completed", rows_erased=answer.rows_erased, completed_at=answer.completed_at)
            if (answer := erasure.answers.get(name)) is not None
            else ServiceErasure(status="pending", rows_erased=None, completed_at=None)
            for name in privacy.SERVICES
        }
        return cls(erasure_id=erasure.erasure_id, status="completed" if erasure.completed_at is not None else "pending",
                   lead_ids=erasure.lead_ids, requested_at=erasure.requested_at, completed_at=erasure.completed_at,
                   services=services)


@router.delete(
    "/people", status_code=status.HTTP_202_ACCEPTED, response_model=ErasurePublic,
    dependencies=[Depends(require_scope("privacy:write"))], responses={**AUTH_ERRORS, **NAMES_NOBODY},
    summary="Erase a person from every service (GDPR art. 17), by email or lead id",
    description="Durable and idempotent: the request is recorded and announced on `privacy.requests`; each "
    "service erases its rows and answers. Asking again while a request for the person is open returns it. "
    "Follow it at `GET /v1/admin/privacy/erasures/{erasure_id}`.",
)
async def erase_person(deps: DepsDep, email: Email = None, lead_id: LeadIds = None) -> Any:
    subject = person_of(email, lead_id or [])
    if isinstance(subject, JSONResponse):
        return subject
    async with unit_of_work(deps.platform, deps) as uow:
        erasure_id = await handlers.request_erasure(*subject, uow)
    return await _erasure(deps, erasure_id)


async def _erasure(deps: Deps, erasure_id: str) -> ErasurePublic | None:
    async with deps.platform.db.transaction() as session:
        erasure = await deps.store.erasure(session, erasure_id)
    return ErasurePublic.of(erasure) if erasure is not None else None


@router.get(
    "/erasures/{erasure_id}", response_model=ErasurePublic, dependencies=[Depends(require_scope("privacy:read"))],
    responses={**AUTH_ERRORS, 404: {"description": "No such erasure request", "model": Problem}},
    summary="An erasure request and each service's answer",
)
async def get_erasure(erasure_id: str, deps: DepsDep) -> Any:
    found = None
    if "\x00" not in erasure_id:  # PostgreSQL text cannot hold one, so no request has it
        found = await _erasure(deps, erasure_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no erasure request '{erasure_id[:100]}'")
    return found


_LEAD = "0d9c3c0e-8a53-4f1e-9a57-3f1f3c2b7a10"
EVERYTHING_EXAMPLE = {
    "email": "ada@example.com", "lead_ids": [_LEAD], "exported_at": "2026-11-23T09:00:00Z",
    "services": {
        "capture": {"service": "capture", "lead_ids": [_LEAD], "tables": {"lead": [
            {"id": _LEAD, "email": "ada@example.com", "form_key": "demo-request"}]}},
        "scoring": {"service": "scoring", "lead_ids": [_LEAD], "tables": {"lead_score": [
            {"lead_id": _LEAD, "score": 52.0, "lifecycle_stage": "mql"}]}},
    },
}


@router.get(
    "/people/export", dependencies=[Depends(require_scope("privacy:read"))],
    responses={**AUTH_ERRORS, **NAMES_NOBODY,
               200: {"content": {"application/json": {"example": EVERYTHING_EXAMPLE}}},
               502: {"description": "A service did not answer; nothing partial is returned", "model": Problem}},
    summary="Everything LeadFlow holds about a person (GDPR art. 15), from all five services, as one document",
    description="The caller's API key must be valid on every service (the admin key, or a `privacy:read` key "
    "created on each).",
)
async def export_everything(request: Request, deps: DepsDep, email: Email = None, lead_id: LeadIds = None) -> Any:
    subject = person_of(email, lead_id or [])
    if isinstance(subject, JSONResponse):
        return subject
    async with deps.platform.db.transaction() as session:
        person = await deps.store.find_person(session, *subject)
        own = await deps.store.export_person(session, person)
    peers = deps.settings.privacy_export_urls
    params = httpx.QueryParams([("lead_id", i) for i in person.lead_ids[:MAX_LEAD_IDS]])
    if person.email:
        params = params.add("email", person.email)
    headers = {"Authorization": request.headers.get("authorization", "")}

    async def ask(name: str, url: str) -> tuple[str, Any]:
        try:
            answer = await deps.platform.http.get(f"{url.rstrip('/')}/v1/admin/privacy/export", params=params,
                                                  headers=headers)
        except httpx.HTTPError as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY,
                                detail=f"{name} did not answer: {type(exc).__name__}") from None
        if answer.status_code != 200:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"{name} answered {answer.status_code}")
        return name, answer.json()

    answers = await asyncio.gather(*(ask(name, url) for name, url in peers.items()))
    return {
        "email": person.email,
        "lead_ids": person.lead_ids,
        "exported_at": deps.platform.clock.now(),
        "services": {"capture": own, **dict(answers)},
    }
