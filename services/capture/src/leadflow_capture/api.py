from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel

from leadflow_capture import handlers

router = APIRouter(tags=["submissions"])


class SubmissionAccepted(BaseModel):
    lead_id: str


@router.post(
    "/v1/forms/{form_key}/submissions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionAccepted,
    summary="Submit a form fill; the lead is stored durably before 202 is returned",
)
async def submit(form_key: str, body: dict[str, Any], request: Request) -> SubmissionAccepted:
    state = request.app.state
    posted = {str(k): "" if v is None else str(v) for k, v in body.items()}
    try:
        async with state.db.transaction() as session:
            lead_id = await handlers.capture_submission(session, state.outbox, form_key, posted, state.clock.now())
    except handlers.UnknownForm:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no form '{form_key}'") from None
    except handlers.InvalidSubmission as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail={"detail": "The submission is invalid; see errors.", "errors": [e.model_dump() for e in exc.errors]},
        ) from None
    return SubmissionAccepted(lead_id=lead_id)
