"""Scoring models, administered: validate, save, dry-run, activate and roll back (scoring:read /
scoring:write); thin over the store and the model's own rules."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.auth import require_scope
from leadflow_kit.bodies import body_limit
from leadflow_kit.errors import FieldError
from leadflow_scoring import dryrun
from leadflow_scoring.bootstrap import Deps, DepsDep
from leadflow_scoring.model import (
    InvalidModel,
    ScoringModelSpec,
    default_model_text,
    json_schema,
    parse_document,
    semantic_errors,
    validate_model,
)
from leadflow_scoring.schemas import (
    ActivationPublic,
    DryRunRequest,
    DryRunResult,
    ScoringModelPublic,
    ValidationReport,
    model_public,
)
from leadflow_scoring.store import NothingToRollBack, UnknownModel

admin_router = APIRouter(prefix="/v1/admin/scoring-models", tags=["scoring models"])

# A model (and a dry run's leads) may be larger than the 64 KiB other bodies get.
MODEL_BODY_LIMIT = 1024 * 1024

READ = [Depends(require_scope("scoring:read"))]
WRITE = [Depends(require_scope("scoring:write"))]

# The shipped model is the example: a document every route taking a model accepts.
DEFAULT_MODEL_TEXT = default_model_text()
MODEL_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A scoring model as JSON or YAML; its JSON Schema is GET /v1/admin/scoring-models/schema",
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": parse_document(DEFAULT_MODEL_TEXT)},
            "application/yaml": {"schema": {"type": "string"}, "example": DEFAULT_MODEL_TEXT},
        },
    }
}
DRAFT_DRY_RUN_BODY: dict[str, Any] = {"requestBody": {"content": {"application/json": {"examples": {
    "recent": {"summary": "The draft (YAML text) against the 50 leads scored last",
               "value": {"model": DEFAULT_MODEL_TEXT, "last_n": 50}},
}}}}}


def _invalid(exc: InvalidModel) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail={"detail": "The scoring model is invalid; see errors.", "errors": jsonable_encoder(exc.errors)},
    )


async def _model_document(request: Request) -> tuple[Any, str]:
    raw = await request.body()
    text = raw.decode("utf-8", errors="replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            return json.loads(text), text
        except json.JSONDecodeError as exc:
            raise InvalidModel([FieldError(field="body", code="syntax", message=f"not valid JSON: {exc}")]) from None
    return parse_document(text), text


def _principal_name(request: Request) -> str | None:
    principal = getattr(request.state, "principal", None)
    return principal.name if principal is not None else None


async def _show_active(deps: Deps, session: AsyncSession, model_id: str) -> None:
    model = await deps.store.model(session, model_id)
    if model is not None:
        deps.metrics.model_in_use(model)


def _counts(spec: ScoringModelSpec) -> dict[str, int]:
    return {"fit_rules": len(spec.fit_rules), "behavior_rules": len(spec.behavior_rules),
            "negative_rules": len(spec.negative_rules), "fast_track": len(spec.mql.fast_track),
            "tiers": len(spec.tiers)}


@admin_router.get("/schema", summary="The JSON Schema of a scoring model", dependencies=READ,
                  responses={200: {"content": {"application/json": {"example": json_schema()}}}})
async def get_schema() -> dict[str, Any]:
    return json_schema()


@admin_router.post("/validate", response_model=ValidationReport, dependencies=WRITE, openapi_extra=MODEL_BODY,
                   summary="Check a model without saving it; every error names the rule and field at fault")
@body_limit(MODEL_BODY_LIMIT)
async def validate(request: Request) -> ValidationReport:
    try:
        document, _ = await _model_document(request)
        spec = validate_model(document)
    except InvalidModel as exc:
        return ValidationReport(valid=False, errors=exc.errors)
    return ValidationReport(valid=True, name=spec.name, rules=_counts(spec))


@admin_router.post("", status_code=201, response_model=ScoringModelPublic, dependencies=WRITE,
                   openapi_extra=MODEL_BODY, summary="Save a new model version (a draft until activated)")
@body_limit(MODEL_BODY_LIMIT)
async def create_model(request: Request, deps: DepsDep) -> ScoringModelPublic:
    try:
        document, source = await _model_document(request)
        spec = validate_model(document)
    except InvalidModel as exc:
        raise _invalid(exc) from None
    async with deps.platform.db.transaction() as session:
        model_id = await deps.store.save_version(session, spec, source_text=source,
                                                 created_by=_principal_name(request))
        saved = await deps.store.version(session, model_id)
    assert saved is not None  # saved in this transaction
    return model_public(saved)


@admin_router.get("", response_model=list[ScoringModelPublic], dependencies=READ,
                  summary="Every saved model version, newest first")
async def list_models(deps: DepsDep) -> list[ScoringModelPublic]:
    async with deps.platform.db.transaction() as session:
        return [model_public(v) for v in await deps.store.list_versions(session)]


@admin_router.get("/activations", dependencies=READ, summary="The activation log, newest first",
                  responses={200: {"content": {"application/json": {"example": [
                      {"id": 2, "model_id": "b2b-saas-default.v2", "activated_by": "ops-admin",
                       "activated_at": "2026-11-20T16:30:00Z", "rolled_back_at": "2026-11-21T08:00:00Z",
                       "rolled_back_by": "ops-admin"},
                      {"id": 1, "model_id": "b2b-saas-default.v1", "activated_by": "bootstrap",
                       "activated_at": "2026-11-01T09:00:00Z"}]}}}})
async def list_activations(deps: DepsDep) -> list[dict[str, Any]]:
    async with deps.platform.db.transaction() as session:
        return jsonable_encoder(await deps.store.activation_log(session))  # type: ignore[no-any-return]


async def _dry_run(deps: Deps, body: DryRunRequest, draft: ScoringModelSpec, draft_id: str | None) -> DryRunResult:
    now = deps.platform.clock.now()
    limit = deps.settings.dry_run_max_leads
    if (body.leads is None) == (body.last_n is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={
            "detail": "Give either leads or last_n.",
            "errors": [{"field": "leads", "code": "one_of", "message": "give either leads or last_n"}]})
    if (body.last_n or 0) > limit or len(body.leads or []) > limit:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={
            "detail": f"A dry run takes at most {limit} leads.",
            "errors": [{"field": "last_n" if body.last_n else "leads", "code": "too_many",
                        "message": f"at most {limit} leads"}]})
    async with deps.platform.db.transaction() as session:
        current = await deps.store.active_model(session)
        if body.leads is not None:
            subjects = dryrun.subjects_from_request(body.leads, now)
        else:
            subjects = await dryrun.recent_subjects(session, deps.store, body.last_n or 0)
    return dryrun.compare(current.spec, current.id, draft, draft_id, subjects, now)


@admin_router.post("/dry-run", response_model=DryRunResult, dependencies=WRITE, openapi_extra=DRAFT_DRY_RUN_BODY,
                   summary="Score leads with a draft model (not saved) and show what would change")
@body_limit(MODEL_BODY_LIMIT)
async def dry_run_draft(body: DryRunRequest, deps: DepsDep) -> DryRunResult:
    if body.model is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={
            "detail": "Give the draft model.",
            "errors": [{"field": "model", "code": "missing", "message": "the draft model is required"}]})
    try:
        document = parse_document(body.model) if isinstance(body.model, str) else body.model
        spec = validate_model(document)
    except InvalidModel as exc:
        raise _invalid(InvalidModel([e.model_copy(update={"field": f"model.{e.field}"}) for e in exc.errors])) \
            from None
    return await _dry_run(deps, body, spec, None)


@admin_router.post("/rollback", response_model=ActivationPublic, dependencies=WRITE,
                   summary="Undo the latest activation: the model active before it is active again")
async def rollback(request: Request, deps: DepsDep) -> ActivationPublic:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        previous = await deps.store.active_version(session)
        try:
            model_id = await deps.store.rollback(session, by=_principal_name(request), now=now)
        except NothingToRollBack as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        await _show_active(deps, session, model_id)
    return ActivationPublic(active_model=model_id, previous_model=previous.id if previous else None,
                            activated_at=now)


@admin_router.get("/{model_id}", response_model=ScoringModelPublic, dependencies=READ,
                  summary="One model version ('active' for the active one)")
async def get_model(model_id: str, deps: DepsDep) -> ScoringModelPublic:
    async with deps.platform.db.transaction() as session:
        if model_id == "active":
            active = await deps.store.active_version(session)
            if active is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no scoring model is active")
            return model_public(active)
        version = await deps.store.version(session, model_id)
    if version is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no scoring model '{model_id}'")
    return model_public(version)


@admin_router.get("/{model_id}/source", dependencies=READ, response_class=PlainTextResponse,
                  responses={200: {"content": {"text/plain": {"example": DEFAULT_MODEL_TEXT},
                                               "application/yaml": {"example": DEFAULT_MODEL_TEXT}}}},
                  summary="A version as it was posted (YAML/JSON text), comments included")
async def get_model_source(model_id: str, deps: DepsDep) -> PlainTextResponse:
    async with deps.platform.db.transaction() as session:
        version = await deps.store.version(session, model_id)
        if version is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no scoring model '{model_id}'")
        source = await deps.store.source_text_of(session, model_id)
    text = source if source is not None else yaml.safe_dump(version.spec, sort_keys=False)
    return PlainTextResponse(text, media_type="application/yaml")


@admin_router.post("/{model_id}/dry-run", response_model=DryRunResult, dependencies=WRITE,
                   summary="Score leads with a saved version and show what would change against the active one")
@body_limit(MODEL_BODY_LIMIT)
async def dry_run_version(model_id: str, body: DryRunRequest, deps: DepsDep) -> DryRunResult:
    if body.model is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={
            "detail": "This route dry-runs a saved version; post a draft to /dry-run instead.",
            "errors": [{"field": "model", "code": "not_allowed", "message": "not allowed here"}]})
    async with deps.platform.db.transaction() as session:
        draft = await deps.store.model(session, model_id)
    if draft is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no scoring model '{model_id}'")
    _check_saved(draft.spec)
    return await _dry_run(deps, body, draft.spec, draft.id)


def _check_saved(spec: ScoringModelSpec) -> None:
    """A version saved before today's checks (a pattern RE2 cannot run, say) is a 422, not a 500 or a
    model that fails every lead."""
    errors = semantic_errors(spec)
    if errors:
        raise _invalid(InvalidModel(errors))


@admin_router.post("/{model_id}/activate", response_model=ActivationPublic, dependencies=WRITE,
                   summary="Make this version the one every new score uses; the sweep re-scores the rest")
async def activate(model_id: str, request: Request, deps: DepsDep) -> ActivationPublic:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        saved = await deps.store.model(session, model_id)
        if saved is not None:
            _check_saved(saved.spec)
        previous = await deps.store.active_version(session)
        try:
            await deps.store.activate(session, model_id, by=_principal_name(request), now=now)
        except UnknownModel:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no scoring model '{model_id}'") from None
        await _show_active(deps, session, model_id)
    return ActivationPublic(active_model=model_id, previous_model=previous.id if previous else None,
                            activated_at=now)
