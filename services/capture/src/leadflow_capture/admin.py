"""Admin API for form definitions (scopes forms:read / forms:write)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, status

from leadflow_capture import domain
from leadflow_capture.bootstrap import DepsDep
from leadflow_capture.schemas import FormCreate, FormPublic, FormUpdate
from leadflow_kit.auth import require_scope
from leadflow_kit.errors import Problem, invalid_field

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
async def create_form(body: FormCreate, deps: DepsDep) -> FormPublic:
    async with deps.platform.db.transaction() as session:
        stored = await deps.store.create_form(session, body, deps.platform.clock.now())
    if stored is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"form '{body.key}' already exists")
    return FormPublic.of(stored)


@router.get("", response_model=list[FormPublic], dependencies=READ, responses=AUTH_ERRORS,
            summary="List forms, optionally only active or archived ones")
async def list_forms(deps: DepsDep, status: Literal["active", "archived"] | None = None) -> list[FormPublic]:
    async with deps.platform.db.transaction() as session:
        forms = await deps.store.list_forms(session, status)
    return [FormPublic.of(stored) for stored in forms]


@router.get("/{form_key}", response_model=FormPublic, dependencies=READ, responses={**AUTH_ERRORS, **NOT_FOUND},
            summary="One form, archived ones included")
async def get_form(form_key: str, deps: DepsDep) -> FormPublic:
    async with deps.platform.db.transaction() as session:
        stored = await deps.store.get_form(session, form_key)
    if stored is None:
        raise _not_found(form_key)
    return FormPublic.of(stored)


@router.patch("/{form_key}", response_model=FormPublic, dependencies=WRITE,
              responses={**AUTH_ERRORS, **NOT_FOUND}, summary="Change a form; status archives or restores it")
async def update_form(form_key: str, body: FormUpdate, deps: DepsDep) -> FormPublic:
    now = deps.platform.clock.now()
    changes = body.model_dump(exclude_unset=True)
    wanted_status = changes.pop("status", None)
    for required in ("name", "field_mapping", "required_fields", "allowed_origins", "consent_required",
                     "honeypot_field", "min_fill_seconds"):
        if required in changes and changes[required] is None:
            raise invalid_field(required, "null_not_allowed", f"{required} cannot be null")
    async with deps.platform.db.transaction() as session:
        current = await deps.store.get_form(session, form_key)
        if current is None:
            raise _not_found(form_key)
        if not domain.consent_complete(current.definition, changes):
            raise invalid_field("consent_required", "consent_text_missing",
                                "a form that requires consent needs consent_text and consent_version")
        if wanted_status is not None:
            # Archiving an archived form keeps the time it was archived.
            changes["archived_at"] = None if wanted_status == "active" else current.definition.archived_at or now
        stored = await deps.store.update_form(session, form_key, changes, now)
    if stored is None:
        raise _not_found(form_key)
    return FormPublic.of(stored)


@router.delete("/{form_key}", status_code=204, dependencies=WRITE, responses={**AUTH_ERRORS, **NOT_FOUND},
               summary="Archive a form: its submissions then get 410 Gone; the definition is kept")
async def archive_form(form_key: str, deps: DepsDep) -> None:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        current = await deps.store.get_form(session, form_key)
        if current is None:
            raise _not_found(form_key)
        if current.definition.archived_at is None:
            await deps.store.update_form(session, form_key, {"archived_at": now}, now)
