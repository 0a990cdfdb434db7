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
from leadflow_capture.runtime import page_load_throttled, runtime_of
from leadflow_capture.schemas import SubmissionAccepted
from leadflow_kit.errors import FieldError, Problem
from leadflow_kit.failures import is_outage

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
async def submit(form_key: str, request: Request) -> Response:
    try:
        return await _submit(form_key, request)
    except Exception as exc:
        # The database being unreachable is the one failure a client should simply retry.
        if not await is_outage(exc, request.app.state.db):
            raise
        log.warning("submission to form %s not stored: the database is unreachable (%s: %s)", form_key,
                    type(exc).__name__, exc)
        media_type, _ = bodies.media_type_of(request.headers.get("content-type"))
        wants_html = web.wants_html(request, media_type)
        origin = request.headers.get("origin")
        return web.storage_unavailable(wants_html, web.cors_headers(origin, runtime_of(request).known_forms.get(
            form_key, ())))


async def _submit(form_key: str, request: Request) -> Response:
    runtime = runtime_of(request)
    state = request.app.state
    media_type, _ = bodies.media_type_of(request.headers.get("content-type"))
    wants_html = web.wants_html(request, media_type)
    origin = request.headers.get("origin")
    ip = runtime.client_ip(request)

    def fail(code: int, detail: str, errors: list[FieldError] | None = None, cors: tuple[str, ...] = (),
             extra: dict[str, str] | None = None) -> Response:
        headers = {**web.cors_headers(origin, cors), **(extra or {})}
        return web.error_response(wants_html, code, detail, errors, headers)

    retry_after = runtime.limiter.check(ip, form_key)
    if retry_after:
        runtime.count(form_key, "rate_limited")
        return fail(429, f"too many submissions; retry after {retry_after} seconds",
                    [_field_error("body", "rate_limited", "rate limit reached")],
                    runtime.known_forms.get(form_key, ()), {"Retry-After": str(retry_after)})

    body = _BodyOnce(request)

    async def submit_to(form: domain.FormDefinition, confirmed: bool) -> Response:
        """The request against ``form``; unless ``confirmed`` (read in this request), ``form`` was
        remembered and every answer first checks it is still the stored one (FormChanged if not)."""

        async def confirm() -> None:
            if not confirmed:
                async with state.db.transaction() as session:
                    await handlers.confirm_form(session, form)

        cors = form.allowed_origins
        if origin is not None and not domain.origin_allowed(cors, origin):
            await confirm()
            runtime.count(form_key, "invalid")
            return fail(403, f"origin {origin[:200]} is not allowed to post to this form",
                        [_field_error("origin", "origin_not_allowed", "add the origin to the form's allowed_origins")])

        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not (0 < len(idempotency_key) <= IDEMPOTENCY_KEY_MAX):
            await confirm()
            runtime.count(form_key, "invalid")
            return fail(400, f"Idempotency-Key must have 1-{IDEMPOTENCY_KEY_MAX} characters",
                        [_field_error("Idempotency-Key", "invalid_idempotency_key", "bad length")], cors)
        try:
            raw = await body.read()
            parsed = bodies.parse_body(request.headers.get("content-type"), raw)
        except bodies.BadBody as exc:
            await confirm()
            runtime.count(form_key, "invalid")
            return _invalid(form, wants_html, exc.status, exc.message, exc.errors, origin) \
                if exc.status == 422 else fail(exc.status, exc.message, exc.errors, cors)

        posted = domain.merge_fields(parsed.pairs)
        context = handlers.SubmissionContext(
            ip=ip,
            user_agent=request.headers.get("user-agent"),
            page_url=request.headers.get("referer") if wants_html else None,
            double_submit_window=runtime.double_submit_window,
            limits=runtime.limits,
        )
        scope = f"submission:{form.key}"
        fingerprint = hashlib.sha256(parsed.media_type.encode() + b"\n" + raw).hexdigest()
        now = state.clock.now()
        try:
            async with state.db.transaction() as session:
                form_confirmed = confirmed
                if idempotency_key is not None:
                    # A replay answers for the form as it is now, so check it before the key.
                    await handlers.confirm_form(session, None if form_confirmed else form)
                    form_confirmed = True
                    stored = await handlers.claim_idempotency_key(session, scope, idempotency_key, fingerprint)
                    if stored is not None:
                        runtime.count(form.key, "duplicate")
                        return _replay(stored, web.cors_headers(origin, cors))
                outcome = await handlers.capture_submission(session, state.outbox, form, posted, now, context,
                                                            form_confirmed=form_confirmed)
                response = _accepted(form, outcome.lead_id, wants_html)
                if idempotency_key is not None:
                    await handlers.store_idempotent_response(session, scope, idempotency_key, _stored(response))
        except handlers.InvalidSubmission as exc:
            runtime.count(form_key, "invalid")
            return _invalid(form, wants_html, 422, "The submission is invalid; see errors.", exc.errors, origin)
        except handlers.IdempotencyKeyReused:
            runtime.count(form_key, "invalid")
            return fail(422, "this Idempotency-Key was used with a different request",
                        [_field_error("Idempotency-Key", "idempotency_key_reused", "send a new key for a new request")],
                        cors)
        runtime.count(form.key, outcome.kind)
        if outcome.kind == "accepted":
            runtime.metrics.leads_captured.labels(form.key).inc()
        elif outcome.kind == "spam":
            log.info("submission to form %s dropped as spam (%s)", form.key, outcome.reason)
        response.headers.update(web.cors_headers(origin, cors))
        return response

    # A form seen before comes from memory and is checked against the stored one in the submission's
    # own transaction; only a form not seen before costs a transaction of its own to read.
    form = runtime.remembered_form(form_key)
    confirmed = form is None
    if form is None:
        async with state.db.transaction() as session:
            form = await handlers.current_form(session, form_key)
    while True:
        if form is None:
            runtime.forget(form_key)
            return fail(404, f"no form '{form_key}'", [_field_error("form_key", "unknown_form", "no such form")])
        runtime.remember(form)
        if form.archived:
            return fail(410, f"form '{form_key}' is archived and takes no more submissions",
                        [_field_error("form_key", "form_archived", "the form is archived")], form.allowed_origins)
        try:
            return await submit_to(form, confirmed)
        except handlers.FormChanged as changed:
            # Edited, archived or removed since it was remembered: answer as for the form it is now.
            form, confirmed = changed.current, True


class _BodyOnce:
    """The request body, read at most once: a request decided again for a changed form reuses it."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self._read: bytes | bodies.BadBody | None = None

    async def read(self) -> bytes:
        if self._read is None:
            try:
                self._read = await web.read_body(self.request)
            except bodies.BadBody as exc:
                self._read = exc
        if isinstance(self._read, bodies.BadBody):
            raise self._read
        return self._read


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


def _stored(response: Response) -> handlers.StoredResponse:
    headers = {k: v for k, v in response.headers.items() if k.lower() in ("location", "content-type")}
    return handlers.StoredResponse(response.status_code, headers, web.response_body_text(response))


def _replay(stored: handlers.StoredResponse, cors: dict[str, str]) -> Response:
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
async def preflight(form_key: str, request: Request) -> Response:
    if (throttled := page_load_throttled(request)) is not None:
        return throttled
    origin = request.headers.get("origin")
    try:
        async with request.app.state.db.transaction() as session:
            form = await handlers.load_form(session, form_key)
    except handlers.UnknownForm:
        return web.json_error(404, f"no form '{form_key}'")
    except handlers.ArchivedForm:
        return web.json_error(410, f"form '{form_key}' is archived")
    runtime_of(request).remember(form)
    return _preflight_answer(origin, request.headers.get("access-control-request-method"), form.allowed_origins)


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
async def embed_script(form_key: str, request: Request) -> Response:
    if (throttled := page_load_throttled(request)) is not None:
        return throttled
    try:
        async with request.app.state.db.transaction() as session:
            form = await handlers.load_form(session, form_key)
    except handlers.UnknownForm:
        return web.json_error(404, f"no form '{form_key}'")
    except handlers.ArchivedForm:
        return web.json_error(410, f"form '{form_key}' is archived")
    settings = runtime_of(request).settings
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
