"""HTTP entrypoints: decode, call a handler, encode. Admin routes need scoring:read / scoring:write."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status

from leadflow_kit.auth import require_scope
from leadflow_scoring import reads, versions
from leadflow_scoring.schemas import ScoringModelPublic, model_public

leads_router = APIRouter(tags=["lead scores"])
admin_router = APIRouter(prefix="/v1/admin/scoring-models", tags=["scoring models"])

READ = [Depends(require_scope("scoring:read"))]
WRITE = [Depends(require_scope("scoring:write"))]


@leads_router.get(
    "/v1/leads/{lead_id}/score",
    response_model=reads.LeadScorePublic,
    dependencies=[Depends(require_scope("leads:read"))],
    summary="A lead's score now (decay applied), its grade, tier, stage and how each past change came about",
)
async def get_lead_score(lead_id: str, request: Request) -> reads.LeadScorePublic:
    state = request.app.state
    async with state.db.transaction() as session:
        view = await reads.lead_score_view(
            session, state.scoring, lead_id, state.clock.now(), state.settings.score_history_limit
        )
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no scored lead '{lead_id}'")
    return view


@admin_router.get("", response_model=list[ScoringModelPublic], dependencies=READ,
                  summary="Every saved model version, newest first")
async def list_models(request: Request) -> list[ScoringModelPublic]:
    async with request.app.state.db.transaction() as session:
        return [model_public(v) for v in await versions.list_versions(session)]


@admin_router.get("/{model_id}", response_model=ScoringModelPublic, dependencies=READ,
                  summary="One model version")
async def get_model(model_id: str, request: Request) -> ScoringModelPublic:
    async with request.app.state.db.transaction() as session:
        if model_id == "active":
            active = await versions.active_version(session)
            if active is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no scoring model is active")
            return model_public(active)
        try:
            return model_public(await versions.get_version(session, model_id))
        except versions.UnknownModel:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no scoring model '{model_id}'") from None
