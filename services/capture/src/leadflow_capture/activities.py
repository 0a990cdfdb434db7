"""``POST /v1/activities``: behavioral events (one, or a batch of up to 100) -> ``lead.activity.v1``."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from leadflow_capture import bodies, domain, handlers, web
from leadflow_capture.bootstrap import Deps, DepsDep
from leadflow_capture.schemas import (
    ACTIVITY_EXAMPLE,
    ActivitiesAccepted,
    ActivityAccepted,
    ActivityBatch,
    ActivityIn,
)
from leadflow_contracts import LeadActivity
from leadflow_contracts.activities import ACTIVITY_TYPES, INTERNAL_ACTIVITY_TYPES
from leadflow_kit.auth import authorize, optional_key_doc, presented_key
from leadflow_kit.bodies import body_limit
from leadflow_kit.errors import FieldError, Problem, field_errors
from leadflow_kit.failures import is_outage

log = logging.getLogger(__name__)

router = APIRouter(tags=["activities"])

ACTIVITIES_SCOPE = "activities:write"
ACTIVITY_OPENAPI: dict[str, Any] = {
    **optional_key_doc(ACTIVITIES_SCOPE),
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
    responses={
        400: {"description": "Malformed JSON or invalid UTF-8", "model": Problem},
        413: {"description": "The body is over the size limit", "model": Problem},
        415: {"description": "Not JSON", "model": Problem},
        401: {"description": "An activity names a lead_id or an email and no valid API key was sent",
              "model": Problem},
        403: {"description": "The Origin is not allowed, or the API key lacks activities:write", "model": Problem},
        422: {"description": "Field-level errors (a batch is taken whole or not at all)", "model": Problem},
        429: {"description": "Rate limited per IP or per lead; see Retry-After", "model": Problem},
        503: {"description": "The database is unreachable; retry after Retry-After", "model": Problem},
    },
    summary="Record behavioral events by anonymous visitor id (public) or by lead id or email (API key)",
    description="Types: " + ", ".join(t for t in ACTIVITY_TYPES if t not in INTERNAL_ACTIVITY_TYPES)
    + ", or custom.<name>; any other type is refused (422). Each becomes a `lead.activity.v1` event keyed "
    "by the lead id, else the visitor id, else an opaque id derived from the email (never the email itself). "
    "Send `{\"activities\": [...]}` for a batch of up to 100. "
    "Browsers send only the `visitor_id` the embed script set; an activity naming a `lead_id` or an "
    "`email` needs an API key with `activities:write` (server to server). Each lead, email and visitor "
    "id has its own rate limit.",
    openapi_extra=ACTIVITY_OPENAPI,
)
@body_limit("max_activities_body_bytes")
async def post_activities(request: Request, deps: DepsDep) -> Response:
    origin = request.headers.get("origin")
    cors = web.cors_headers(origin, deps.settings.activity_allowed_origins)
    if origin is not None and not cors.get("Access-Control-Allow-Origin"):
        return web.json_error(403, f"origin {origin[:200]} may not post activities", headers=cors)
    retry_after = deps.limiters.activities.check(deps.client_ip(request), None)
    if retry_after:
        return web.too_many_requests(retry_after, cors)
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
    try:
        return await _accept(request, deps, parsed, cors)
    except Exception as exc:
        # The key lookup and the insert need the database: an outage is a 503 a browser can read
        # (CORS headers), never a 500.
        if not await is_outage(exc, deps.platform.db):
            raise
        log.warning("activities not stored: the database is unreachable (%s: %s)", type(exc).__name__, exc)
        return web.storage_unavailable(False, cors)


async def _accept(request: Request, deps: Deps, parsed: ActivityIn | ActivityBatch,
                  cors: dict[str, str]) -> Response:
    """Check the key and the per-lead limit, then store the activities and their events (in one transaction with
    the posts of the same moment: ``Deps.activity_posts``)."""
    items = parsed.activities if isinstance(parsed, ActivityBatch) else [parsed]
    refused = await _refuse_unkeyed(request, items, cors)
    if refused is not None:
        return refused
    retry_after = deps.limiters.activity_subjects.take_each(
        subject for item in items for subject in _subjects(item))
    if retry_after:
        return web.json_error(429, f"too many activities for one lead; retry after {retry_after} seconds",
                              [FieldError(field="body", code="rate_limited", message="per-lead rate limit reached")],
                              headers={**cors, "Retry-After": str(retry_after)})
    now = deps.platform.clock.now()
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
        # Shares a transaction with the posts of the same millisecond or two; answers once it committed.
        ids = await deps.activity_posts.run(handlers.record_activity_posts, events)
    except handlers.InvalidSubmission as exc:
        return web.json_error(422, "The activities are invalid; see errors.", exc.errors, headers=cors)
    for event in events:
        known = event.activity_type in ACTIVITY_TYPES
        deps.metrics.activities.labels(event.activity_type if known else "custom").inc()
    body = {"activity_ids": ids} if isinstance(parsed, ActivityBatch) else {"activity_id": ids[0]}
    return JSONResponse(body, status_code=202, headers=cors)


KEY_NEEDED = (" to name a lead_id or an email (server to server, scope activities:write);"
              " a browser sends only the visitor_id the embed script set")


async def _refuse_unkeyed(request: Request, items: list[ActivityIn], cors: dict[str, str]) -> Response | None:
    """Anyone may report what an anonymous visitor did; an activity naming a known lead (its id or
    email) moves that lead's score, so it takes a key with activities:write. A key sent is checked
    either way."""
    if presented_key(request) is None and not any(item.lead_id or item.email for item in items):
        return None
    try:
        await authorize(request, ACTIVITIES_SCOPE, why=KEY_NEEDED)
    except HTTPException as exc:
        return web.json_error(exc.status_code, str(exc.detail),
                              [FieldError(field="Authorization", code="api_key_required" if exc.status_code == 401
                                          else "scope_missing", message=str(exc.detail))],
                              headers={**cors, **(exc.headers or {})})
    return None


def _subjects(item: ActivityIn) -> list[str]:
    """The per-lead rate limit's keys: every identity the activity names."""
    return [f"{kind}:{value.strip().lower() if kind == 'email' else value}"
            for kind, value in (("lead", item.lead_id), ("email", item.email), ("visitor", item.visitor_id))
            if value]


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
        429: {"description": "Rate limited per IP; see Retry-After", "model": Problem},
    },
)
async def activities_preflight(request: Request, deps: DepsDep) -> Response:
    if (throttled := web.page_load_throttled(deps.limiters.page_loads, deps.client_ip(request))) is not None:
        return throttled
    origin = request.headers.get("origin")
    allowed = deps.settings.activity_allowed_origins
    if origin is None:
        return Response(status_code=204, headers={"Allow": "POST, OPTIONS"})
    if not web.cors_headers(origin, allowed).get("Access-Control-Allow-Origin"):
        return web.json_error(403, f"origin {origin[:200]} is not allowed", headers={"Vary": "Origin"})
    return Response(status_code=204, headers=web.preflight_headers(origin))
