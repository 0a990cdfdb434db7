"""A lead's score, read by sales tools and the console (scoring:read)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from leadflow_kit.auth import require_scope
from leadflow_scoring import reads
from leadflow_scoring.bootstrap import DepsDep

leads_router = APIRouter(tags=["lead scores"])


@leads_router.get(
    "/v1/leads/{lead_id}/score",
    response_model=reads.LeadScorePublic,
    dependencies=[Depends(require_scope("leads:read"))],
    summary="A lead's score now (decay applied), its grade, tier, stage and how each past change came about",
)
async def get_lead_score(lead_id: str, deps: DepsDep) -> reads.LeadScorePublic:
    async with deps.platform.db.transaction() as session:
        view = await reads.lead_score_view(
            session, deps.store, lead_id, deps.platform.clock.now(), deps.settings.score_history_limit
        )
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no scored lead '{lead_id}'")
    return view
