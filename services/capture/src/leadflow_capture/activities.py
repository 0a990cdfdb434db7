"""``POST /v1/activities``: behavioral events (one, or a batch of up to 100) -> ``lead.activity.v1``."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from leadflow_capture import bodies, domain, handlers, web
from leadflow_capture.runtime import runtime_of
from leadflow_capture.schemas import (
    ACTIVITY_EXAMPLE,
    ActivitiesAccepted,
    ActivityAccepted,
    ActivityBatch,
    ActivityIn,
)
from leadflow_contracts import LeadActivity
from leadflow_kit.bodies import body_limit
from leadflow_kit.errors import FieldError, Problem, field_errors

log = logging.getLogger(__name__)

router = APIRouter(tags=["activities"])

ACTIVITY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {
            "schema": {"oneOf": [{"$ref": "#/components/schemas/ActivityIn"},
                                 {"$ref": "#/components/schemas/ActivityBatch"}]},
            "examples": {
                "single": {"summary": "One event", "value": ACTIVITY_EXAMPLE},
                "batch": {"summary": "Up to 100 events", "value": {"activities": [
                    ACTIVITY_EXAMPLE,
                    {"type": "webinar_registered", "lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4",
                     "properties": {"webinar": "scaling-pipelines"}},
                ]}},
            },
        }},
    },
}


@router.post(
    "/v1/activities",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ActivityAccepted | ActivitiesAccepted,
    openapi_extra=ACTIVITY_OPENAPI,
    responses={
        400: {"description": "Malformed JSON or invalid UTF-8", "model": Problem},
        413: {"description": "The body is over the size limit", "model": Problem},
        415: {"description": "Not JSON", "model": Problem},
        422: {"description": "Field-level errors (a batch is taken whole or not at all)", "model": Problem},
        429: {"description": "Rate limited per IP; see Retry-After", "model": Problem},
        503: {"description": "The database is unreachable; retry after Retry-After", "model": Problem},
    },
    summary="Record behavioral events by lead id, email or anonymous visitor id",
    description="Types: page_view, content_download, webinar_registered, webinar_attended, pricing_page_view, "
    "email_click, demo_requested, or custom. Each becomes a `lead.activity.v1` event keyed by the lead id, "
    "else the visitor id, else the email. Send `{\"activities\": [...]}` for a batch of up to 100.",
)
@body_limit("max_activities_body_bytes")
async def post_activities(request: Request) -> Response:
    runtime = runtime_of(request)
    state = request.app.state
    origin = request.headers.get("origin")
    cors = web.cors_headers(origin, runtime.settings.activity_allowed_origins)
    if origin is not None and not cors.get("Access-Control-Allow-Origin"):
        return web.json_error(403, f"origin {origin[:200]} may not post activities", headers=cors)
    retry_after = runtime.activity_limiter.check(runtime.client_ip(request), None)
    if retry_after:
        return web.json_error(429, f"too many requests; retry after {retry_after} seconds",
                              [FieldError(field="body", code="rate_limited", message="rate limit reached")],
                              headers={**cors, "Retry-After": str(retry_after)})
    try:
        raw = await web.read_body(request)
        media_type, _ = bodies.media_type_of(request.headers.get("content-type"))
        if not bodies.is_json_type(media_type):
            raise bodies.BadBody(415, "unsupported_media_type", "send activities as application/json")
        document = bodies.load_json(raw)
        if isinstance(document, list):
            document = {"activities": document}
        if _has_control_characters(document):
            raise bodies.BadBody(422, "invalid_characters", "text in activities may not contain control characters")
        parsed: ActivityIn | ActivityBatch = (
            ActivityBatch.model_validate(document)
            if isinstance(document, dict) and "activities" in document
            else ActivityIn.model_validate(document)
        )
    except bodies.BadBody as exc:
        return web.json_error(exc.status, exc.message, exc.errors, headers=cors)
    except ValidationError as exc:
        return web.json_error(422, "The activities are invalid; see errors.", field_errors(exc.errors()),
                              headers=cors)
    items = parsed.activities if isinstance(parsed, ActivityBatch) else [parsed]
    now = state.clock.now()
    events = [
        LeadActivity(
            activity_id=item.activity_id or str(uuid.uuid4()),
            activity_type=item.type,
            occurred_at=_aware(item.occurred_at) or now,
            lead_id=item.lead_id,
            email=item.email.strip().lower() if item.email else None,
            visitor_id=item.visitor_id,
            page_url=item.page_url,
            properties=item.properties,
        )
        for item in items
    ]
    try:
        async with state.db.transaction() as session:
            ids = await handlers.record_activities(session, state.outbox, events)
    except handlers.InvalidSubmission as exc:
        return web.json_error(422, "The activities are invalid; see errors.", exc.errors, headers=cors)
    except web.STORAGE_ERRORS:
        log.warning("activities not stored: the database is unreachable", exc_info=True)
        return web.storage_unavailable(False, cors)
    for event in events:
        runtime.metrics.activities.labels(event.activity_type if event.activity_type in KNOWN else "custom").inc()
    body = {"activity_ids": ids} if isinstance(parsed, ActivityBatch) else {"activity_id": ids[0]}
    return JSONResponse(body, status_code=202, headers=cors)


KNOWN = frozenset({"page_view", "content_download", "webinar_registered", "webinar_attended",
                   "pricing_page_view", "email_click", "demo_requested"})


def _aware(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _has_control_characters(value: Any) -> bool:
    if isinstance(value, str):
        return domain.has_control_characters(value)
    if isinstance(value, dict):
        return any(_has_control_characters(k) or _has_control_characters(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_control_characters(v) for v in value)
    return False


@router.options(
    "/v1/activities",
    status_code=204,
    summary="CORS preflight for activities from web pages",
    responses={
        204: {"description": "Allowed", "headers": {"Access-Control-Allow-Origin": {
            "schema": {"type": "string"}, "example": "https://www.example.com"}}},
        403: {"description": "Origin not allowed", "model": Problem,
              "content": {"application/json": {"example": {"detail": "origin https://evil.example is not allowed",
                                                           "errors": []}}}},
    },
)
async def activities_preflight(request: Request) -> Response:
    origin = request.headers.get("origin")
    allowed = runtime_of(request).settings.activity_allowed_origins
    if origin is None:
        return Response(status_code=204, headers={"Allow": "POST, OPTIONS"})
    if not web.cors_headers(origin, allowed).get("Access-Control-Allow-Origin"):
        return web.json_error(403, f"origin {origin[:200]} is not allowed", headers={"Vary": "Origin"})
    return Response(status_code=204, headers=web.preflight_headers(origin))
