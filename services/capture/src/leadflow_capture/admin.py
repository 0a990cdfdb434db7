"""Admin API for form definitions (scopes forms:read / forms:write)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status

from leadflow_capture import handlers
from leadflow_capture.schemas import FormCreate, FormPublic, FormUpdate
from leadflow_kit.auth import require_scope
from leadflow_kit.errors import Problem

router = APIRouter(prefix="/v1/admin/forms", tags=["forms (admin)"])

READ = [Depends(require_scope("forms:read"))]
WRITE = [Depends(require_scope("forms:write"))]
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or an unknown or revoked one", "model": Problem},
    403: {"description": "The API key lacks the scope", "model": Problem},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No form with this key", "model": Problem,
          "content": {"application/json": {"example": {"detail": "no form 'nope'"}}}},
}


def _not_found(key: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no form '{key}'")


@router.post("", status_code=201, response_model=FormPublic, dependencies=WRITE,
             responses={**AUTH_ERRORS, 409: {"description": "A form with this key exists", "model": Problem}},
             summary="Define a form")
async def create_form(body: FormCreate, request: Request) -> FormPublic:
    state = request.app.state
    try:
        async with state.db.transaction() as session:
            row = await handlers.create_form(session, body.model_dump(), state.clock.now())
    except handlers.FormExists:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"form '{body.key}' already exists") from None
    return FormPublic.of(row)


@router.get("", response_model=list[FormPublic], dependencies=READ, responses=AUTH_ERRORS,
            summary="List forms, optionally only active or archived ones")
async def list_forms(request: Request, status: Literal["active", "archived"] | None = None) -> list[FormPublic]:
    async with request.app.state.db.transaction() as session:
        rows = await handlers.list_forms(session, status)
    return [FormPublic.of(r) for r in rows]


@router.get("/{form_key}", response_model=FormPublic, dependencies=READ, responses={**AUTH_ERRORS, **NOT_FOUND},
            summary="One form, archived ones included")
async def get_form(form_key: str, request: Request) -> FormPublic:
    try:
        async with request.app.state.db.transaction() as session:
            row = await handlers.find_form_row(session, form_key)
    except handlers.UnknownForm:
        raise _not_found(form_key) from None
    return FormPublic.of(row)


@router.patch("/{form_key}", response_model=FormPublic, dependencies=WRITE,
              responses={**AUTH_ERRORS, **NOT_FOUND}, summary="Change a form; status archives or restores it")
async def update_form(form_key: str, body: FormUpdate, request: Request) -> FormPublic:
    state = request.app.state
    now = state.clock.now()
    values = body.model_dump(exclude_unset=True)
    wanted_status = values.pop("status", None)
    for required in ("name", "field_mapping", "required_fields", "allowed_origins", "consent_required",
                     "honeypot_field", "min_fill_seconds"):
        if required in values and values[required] is None:
            raise HTTPException(422, detail={
                "detail": "The request is invalid; see errors.",
                "errors": [{"field": required, "code": "null_not_allowed", "message": f"{required} cannot be null"}],
            })
    if wanted_status == "archived":
        values["archived_at"] = now
    elif wanted_status == "active":
        values["archived_at"] = None
    try:
        async with state.db.transaction() as session:
            current = await handlers.find_form_row(session, form_key)
            consent_required = values.get("consent_required", current.consent_required)
            text = values.get("consent_text", current.consent_text)
            version = values.get("consent_version", current.consent_version)
            if consent_required and not (text and version):
                raise HTTPException(422, detail={
                    "detail": "The request is invalid; see errors.",
                    "errors": [{"field": "consent_required", "code": "consent_text_missing",
                                "message": "a form that requires consent needs consent_text and consent_version"}],
                })
            if wanted_status == "archived" and current.archived_at is not None:
                values["archived_at"] = current.archived_at
            row = await handlers.update_form(session, form_key, values, now)
    except handlers.UnknownForm:
        raise _not_found(form_key) from None
    return FormPublic.of(row)


@router.delete("/{form_key}", status_code=204, dependencies=WRITE, responses={**AUTH_ERRORS, **NOT_FOUND},
               summary="Archive a form: its submissions then get 410 Gone; the definition is kept")
async def archive_form(form_key: str, request: Request) -> None:
    state = request.app.state
    try:
        async with state.db.transaction() as session:
            current = await handlers.find_form_row(session, form_key)
            if current.archived_at is None:
                await handlers.update_form(session, form_key, {"archived_at": state.clock.now()}, state.clock.now())
    except handlers.UnknownForm:
        raise _not_found(form_key) from None
