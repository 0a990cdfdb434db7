"""Public form endpoints: submissions (JSON, urlencoded, multipart), CORS preflight, thank-you page,
embed script. Entrypoints only: decode the request, call a handler, encode the answer."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from leadflow_capture import bodies, domain, handlers, web
from leadflow_capture.bootstrap import Deps, DepsDep
from leadflow_capture.schemas import SubmissionAccepted
from leadflow_capture.store import StoredResponse
from leadflow_kit.errors import FieldError, Problem
from leadflow_kit.failures import is_outage
from leadflow_kit.uow import unit_of_work

log = logging.getLogger(__name__)

router = APIRouter(tags=["submissions"])

IDEMPOTENCY_KEY_MAX = 255
SUBMISSION_FIELDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Form fields by name. The form's field mapping turns them into lead fields; "
    "utm_*, gclid, fbclid, msclkid, referrer, landing_page and page_title are attribution; "
    "`consent` (true/on/yes) records consent; `_rendered_at` (epoch ms or ISO time) feeds the "
    "minimum fill time; `visitor_id` links earlier anonymous activity; the form's honeypot field "
    "must stay empty. Everything else is kept as a custom field.",
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
    "maxProperties": 100,
}
# A form encoding carries only text; JSON may also send numbers, booleans and null.
FORM_FIELDS_SCHEMA: dict[str, Any] = {**SUBMISSION_FIELDS_SCHEMA, "additionalProperties": {"type": "string"}}
SUBMISSION_EXAMPLE = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Analytical Engines Ltd",
    "job_title": "Head of Engineering",
    "utm_source": "newsletter",
    "utm_campaign": "q4-launch",
    "consent": "true",
}
SUBMISSION_OPENAPI: dict[str, Any] = {
    "parameters": [
        {"name": "Idempotency-Key", "in": "header", "required": False,
         "schema": {"type": "string", "maxLength": IDEMPOTENCY_KEY_MAX},
         "description": "A retry with the same key (and body) gets the original response back"},
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SUBMISSION_FIELDS_SCHEMA, "example": SUBMISSION_EXAMPLE},
            "application/x-www-form-urlencoded": {"schema": FORM_FIELDS_SCHEMA, "example": SUBMISSION_EXAMPLE},
            "multipart/form-data": {"schema": FORM_FIELDS_SCHEMA, "example": SUBMISSION_EXAMPLE},
        },
    },
}


def _error_doc(description: str, code: str, message: str) -> dict[str, Any]:
    return {
        "description": description,
        "model": Problem,
        "content": {"application/json": {"example": {
            "detail": message, "errors": [{"field": "body", "code": code, "message": message}]}}},
    }


SUBMISSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    303: {"description": "Browser form post: redirect to the success URL (`?lead_id=`) or the error URL "
          "(`?error.<field>=<code>`), or to the built-in thank-you page"},
    400: _error_doc("Malformed body, invalid UTF-8 or a bad Idempotency-Key", "malformed_json",
                    "the body is not valid JSON"),
    403: _error_doc("The Origin header names an origin the form does not allow", "origin_not_allowed",
                    "origin https://evil.example is not allowed to post to this form"),
    404: _error_doc("No form with this key", "unknown_form", "no form 'nope'"),
    410: _error_doc("The form is archived", "form_archived", "form 'old' is archived"),
    413: _error_doc("The body is over the size limit", "body_too_large", "the body exceeds 65536 bytes"),
    415: _error_doc("Unsupported Content-Type or charset", "unsupported_media_type",
                    "Content-Type 'text/plain' is not supported"),
    422: {"description": "Invalid fields (field-level errors) or an Idempotency-Key reused with another body",
          "model": Problem},
    429: _error_doc("Rate limited (per IP or per form); see Retry-After", "rate_limited",
                    "too many submissions; retry after 3 seconds"),
    503: _error_doc("The database is unreachable; nothing was stored, retry after Retry-After",
                    "storage_unavailable", "submissions cannot be stored right now; retry shortly"),
}


@router.post(
    "/v1/forms/{form_key}/submissions",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SubmissionAccepted,
    responses=SUBMISSION_RESPONSES,
    openapi_extra=SUBMISSION_OPENAPI,
    summary="Submit a form fill; the lead is stored durably before 202 is returned",
    description="Takes JSON, urlencoded and multipart bodies. API clients get `202 {lead_id}` or `422` with "
    "field errors; browser form posts (Accept: text/html, or a form encoding without a JSON Accept) get a "
    "`303` to the form's success or error URL, or a built-in page. Spam (honeypot, too-fast fill) is "
    "answered like a success and dropped; a double submit of the same email returns the first lead id.",
)
async def submit(form_key: str, request: Request, deps: DepsDep) -> Response:
    post = _Post(request, deps, form_key)
    try:
        return await _submit(post)
    except Exception as exc:
        # The database being unreachable is the one failure a client should simply retry.
        if not await is_outage(exc, deps.platform.db):
            raise
        log.warning("submission to form %s not stored: the database is unreachable (%s: %s)", form_key,
                    type(exc).__name__, exc)
        return web.storage_unavailable(post.wants_html,
                                       web.cors_headers(post.origin, deps.forms.allowed_origins(form_key)))


class _Post:
    """One submission: who sent it, what it wants back, and its body, read at most once (a request decided
    again for a changed form reuses it)."""

    def __init__(self, request: Request, deps: Deps, form_key: str) -> None:
        self.request = request
        self.deps = deps
        self.form_key = form_key
        media_type, _ = bodies.media_type_of(request.headers.get("content-type"))
        self.wants_html = web.wants_html(request, media_type)
        self.origin = request.headers.get("origin")
        self.ip = deps.client_ip(request)
        self._read: bytes | bodies.BadBody | None = None

    async def body(self) -> bytes:
        if self._read is None:
            try:
                self._read = await web.read_body(self.request)
            except bodies.BadBody as exc:
                self._read = exc
        if isinstance(self._read, bodies.BadBody):
            raise self._read
        return self._read

    def fail(self, code: int, detail: str, errors: list[FieldError] | None = None, cors: tuple[str, ...] = (),
             extra: dict[str, str] | None = None) -> Response:
        headers = {**web.cors_headers(self.origin, cors), **(extra or {})}
        return web.error_response(self.wants_html, code, detail, errors, headers)


async def _submit(post: _Post) -> Response:
    deps, form_key = post.deps, post.form_key
    retry_after = deps.limiters.submissions.check(post.ip, form_key)
    if retry_after:
        deps.count(form_key, "rate_limited")
        return post.fail(429, f"too many submissions; retry after {retry_after} seconds",
                         [_field_error("body", "rate_limited", "rate limit reached")],
                         deps.forms.allowed_origins(form_key), {"Retry-After": str(retry_after)})
    # A form seen before comes from memory and is checked against the stored one in the submission's
    # own transaction; only a form not seen before costs a transaction of its own to read.
    form = deps.forms.remembered(form_key)
    confirmed = form is None
    if form is None:
        async with deps.platform.db.transaction() as session:
            form = await deps.store.current_form(session, form_key)
    while True:
        if form is None:
            deps.forms.forget(form_key)
            return post.fail(404, f"no form '{form_key}'", [_field_error("form_key", "unknown_form", "no such form")])
        deps.forms.remember(form)
        if form.archived:
            return post.fail(410, f"form '{form_key}' is archived and takes no more submissions",
                             [_field_error("form_key", "form_archived", "the form is archived")], form.allowed_origins)
        try:
            return await _submit_to(post, form, confirmed)
        except handlers.FormChanged as changed:
            # Edited, archived or removed since it was remembered: answer as for the form it is now.
            form, confirmed = changed.current, True


async def _submit_to(post: _Post, form: domain.FormDefinition, confirmed: bool) -> Response:
    """The request against ``form``; unless ``confirmed`` (read in this request), ``form`` was
    remembered and every answer first checks it is still the stored one (FormChanged if not)."""
    read = await _read(post, form)
    if isinstance(read, Response):
        if not confirmed:
            async with unit_of_work(post.deps.platform, post.deps) as uow:
                await handlers.confirm_form(form, uow)
        post.deps.count(post.form_key, "invalid")
        return read
    return await _capture(post, _fill(post, form, confirmed, *read))


async def _read(post: _Post, form: domain.FormDefinition) -> tuple[bodies.ParsedBody, bytes] | Response:
    """The parsed body and its bytes, or the answer refusing the request before its fill is looked at."""
    cors = form.allowed_origins
    if post.origin is not None and not domain.origin_allowed(cors, post.origin):
        return post.fail(403, f"origin {post.origin[:200]} is not allowed to post to this form",
                         [_field_error("origin", "origin_not_allowed", "add the origin to the form's allowed_origins")])
    idempotency_key = post.request.headers.get("idempotency-key")
    if idempotency_key is not None and not (0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX):
        return post.fail(400, f"Idempotency-Key must have 1-{IDEMPOTENCY_KEY_MAX} characters",
                         [_field_error("Idempotency-Key", "invalid_idempotency_key", "bad length")], cors)
    try:
        raw = await post.body()
        return bodies.parse_body(post.request.headers.get("content-type"), raw), raw
    except bodies.BadBody as exc:
        return _invalid(form, post.wants_html, exc.status, exc.message, exc.errors, post.origin) \
            if exc.status == 422 else post.fail(exc.status, exc.message, exc.errors, cors)


def _fill(post: _Post, form: domain.FormDefinition, confirmed: bool, parsed: bodies.ParsedBody,
          raw: bytes) -> handlers.FormFill:
    headers = post.request.headers
    idempotency_key = headers.get("idempotency-key")
    claim = None if idempotency_key is None else handlers.IdempotencyClaim(
        f"submission:{form.key}", idempotency_key,
        hashlib.sha256(parsed.media_type.encode() + b"\n" + raw).hexdigest(),
        functools.partial(_stored_answer, form, post.wants_html))
    context = handlers.SubmissionContext(
        ip=post.ip,
        user_agent=headers.get("user-agent"),
        page_url=headers.get("referer") if post.wants_html else None,
        double_submit_window=post.deps.double_submit_window,
        limits=post.deps.limits,
    )
    return handlers.FormFill(form, domain.merge_fields(parsed.pairs), context, confirmed, claim)


async def _capture(post: _Post, fill: handlers.FormFill) -> Response:
    deps, form = post.deps, fill.form
    cors = web.cors_headers(post.origin, form.allowed_origins)
    try:
        # Shares a transaction with the fills of the same millisecond or two; answers once it committed.
        outcome: handlers.Outcome | StoredResponse = await deps.fills.run(handlers.capture_form_fills, fill)
    except handlers.InvalidSubmission as exc:
        deps.count(post.form_key, "invalid")
        return _invalid(form, post.wants_html, 422, "The submission is invalid; see errors.", exc.errors, post.origin)
    except handlers.IdempotencyKeyReused:
        deps.count(post.form_key, "invalid")
        return post.fail(422, "this Idempotency-Key was used with a different request", [_field_error(
            "Idempotency-Key", "idempotency_key_reused", "send a new key for a new request")], form.allowed_origins)
    if isinstance(outcome, StoredResponse):
        deps.count(form.key, "duplicate")
        return _replay(outcome, cors)
    response = _accepted(form, outcome.lead_id, post.wants_html)
    deps.count(form.key, outcome.kind)
    if outcome.kind == "accepted":
        deps.metrics.leads_captured.labels(form.key).inc()
    elif outcome.kind == "spam":
        log.info("submission to form %s dropped as spam (%s)", form.key, outcome.reason)
    response.headers.update(cors)
    return response


def _stored_answer(form: domain.FormDefinition, wants_html: bool, outcome: handlers.Outcome) -> StoredResponse:
    """The answer to a request with an Idempotency-Key, as its retries get it back."""
    return _stored(_accepted(form, outcome.lead_id, wants_html))


def _field_error(field: str, code: str, message: str) -> FieldError:
    return FieldError(field=field, code=code, message=message)


def _accepted(form: domain.FormDefinition, lead_id: str, wants_html: bool) -> Response:
    if wants_html:
        target = form.success_url or f"/v1/forms/{form.key}/thanks"
        return RedirectResponse(domain.success_redirect(target, lead_id), status_code=status.HTTP_303_SEE_OTHER)
    return JSONResponse({"lead_id": lead_id}, status_code=status.HTTP_202_ACCEPTED)


def _invalid(form: domain.FormDefinition, wants_html: bool, code: int, detail: str,
             errors: list[FieldError], origin: str | None) -> Response:
    headers = web.cors_headers(origin, form.allowed_origins)
    if wants_html and form.error_url:
        return RedirectResponse(domain.error_redirect(form.error_url, form.key, errors),
                                status_code=status.HTTP_303_SEE_OTHER, headers=headers)
    return web.error_response(wants_html, code, detail, errors, headers)


def _stored(response: Response) -> StoredResponse:
    headers = {k: v for k, v in response.headers.items() if k.lower() in ("location", "content-type")}
    return StoredResponse(response.status_code, headers, web.response_body_text(response))


def _replay(stored: StoredResponse, cors: dict[str, str]) -> Response:
    headers = {**stored.headers, **cors, "Idempotency-Replayed": "true"}
    media_type = headers.pop("content-type", None)
    return Response(stored.body, status_code=stored.status_code, headers=headers, media_type=media_type)


@router.options(
    "/v1/forms/{form_key}/submissions",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: _error_doc("Origin not allowed", "origin_not_allowed", "origin not allowed"),
               404: _error_doc("No form with this key", "unknown_form", "no form 'nope'"),
               410: _error_doc("The form is archived", "form_archived", "form 'old' is archived"),
               429: _error_doc("Rate limited per IP; see Retry-After", "rate_limited", "rate limit reached")},
    summary="CORS preflight: allowed only for the form's allowed origins",
)
async def preflight(form_key: str, request: Request, deps: DepsDep) -> Response:
    if (throttled := web.page_load_throttled(deps.limiters.page_loads, deps.client_ip(request))) is not None:
        return throttled
    origin = request.headers.get("origin")
    form = await _active_form(deps, form_key)
    if isinstance(form, Response):
        return form
    deps.forms.remember(form)
    return _preflight_answer(origin, request.headers.get("access-control-request-method"), form.allowed_origins)


async def _active_form(deps: Deps, form_key: str) -> domain.FormDefinition | Response:
    """The form a page loads (embed.js, a preflight), or the 404 or 410 that says why there is none."""
    async with deps.platform.db.transaction() as session:
        form = await deps.store.current_form(session, form_key)
    if form is None:
        return web.json_error(404, f"no form '{form_key}'")
    if form.archived:
        return web.json_error(410, f"form '{form_key}' is archived")
    return form


def _preflight_answer(origin: str | None, method: str | None, allowed: tuple[str, ...] | list[str]) -> Response:
    if origin is None:
        return Response(status_code=204, headers={"Allow": "POST, OPTIONS"})
    if not domain.origin_allowed(allowed, origin):
        return web.json_error(403, f"origin {origin[:200]} is not allowed", headers={"Vary": "Origin"})
    if method is not None and method.upper() not in ("POST", "OPTIONS"):
        return web.json_error(403, f"method {method[:20]} is not allowed; use POST", headers={"Vary": "Origin"})
    return Response(status_code=204, headers=web.preflight_headers(origin))


@router.get(
    "/v1/forms/{form_key}/thanks",
    response_class=HTMLResponse,
    summary="Built-in thank-you page for browser posts to forms without a success URL",
    responses={200: {"content": {"text/html": {"example": "<!doctype html>…Thank you…"}}}},
)
async def thanks(form_key: str, request: Request, lead_id: str | None = None) -> HTMLResponse:
    return web.page("Thank you!", "<p>We have received your details and will be in touch soon.</p>")


@router.get(
    "/v1/forms/{form_key}/embed.js",
    summary="A script that turns a form on any page into a LeadFlow form (fetch, UTM, inline errors)",
    response_class=Response,
    responses={
        200: {"content": {"application/javascript": {
            "schema": {"type": "string", "description": "The script; include it as the example shows"},
            "example": '<form data-leadflow-form="demo">…</form>\n'
                       '<script src="https://capture.example.com/v1/forms/demo/embed.js" async></script>'}}},
        404: _error_doc("No form with this key", "unknown_form", "no form 'nope'"),
        410: _error_doc("The form is archived", "form_archived", "form 'old' is archived"),
        429: _error_doc("Rate limited per IP; see Retry-After", "rate_limited", "rate limit reached"),
    },
)
async def embed_script(form_key: str, request: Request, deps: DepsDep) -> Response:
    if (throttled := web.page_load_throttled(deps.limiters.page_loads, deps.client_ip(request))) is not None:
        return throttled
    form = await _active_form(deps, form_key)
    if isinstance(form, Response):
        return form
    settings = deps.settings
    # Never the request's Host: a forged one would point the script (and any cache holding it) elsewhere.
    base = (settings.public_base_url or "").rstrip("/")
    config = {
        "formKey": form.key,
        "endpoint": f"{base}/v1/forms/{form.key}/submissions",
        "honeypotField": form.honeypot_field,
    }
    script = embed_template().replace("__LEADFLOW_CONFIG__", json.dumps(config).replace("</", "<\\/"))
    return Response(
        script,
        media_type="application/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


@functools.cache
def embed_template() -> str:
    return resources.files("leadflow_capture").joinpath("embed.js").read_text(encoding="utf-8")
