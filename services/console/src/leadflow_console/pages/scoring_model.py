"""The scoring model: the active model's YAML in an editor, validation errors shown at their line, a dry run
of the draft over the leads scored last, saving and activating a version, and rolling back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from leadflow_console import source_lines
from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceClient, ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render
from leadflow_console.unavailable import degrades

HOME = "/scoring-model"
router = APIRouter(prefix=HOME, tags=["scoring model"])

MODELS = "/v1/admin/scoring-models"
MAX_MODEL_CHARS = 500_000
DRY_RUN_DEFAULT_LEADS = 50
DRY_RUN_MAX_LEADS = 500
YAML_HEADERS = {"content-type": "application/yaml"}

MarketingOps = Annotated[User, Depends(require_roles("marketing_ops"))]
ModelId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")]
Action = Literal["validate", "dry_run", "save", "activate"]


async def _history(scoring: ServiceClient) -> dict[str, Any]:
    versions: list[dict[str, Any]] = await scoring.get(MODELS)
    activations: list[dict[str, Any]] = await scoring.get(f"{MODELS}/activations")
    return {"versions": versions, "active": next((v for v in versions if v.get("active")), None),
            "activations": activations[:10]}


async def _editor(request: Request, scoring: ServiceClient, text: str, *, problems: list[source_lines.Problem],
                  loaded: str | None, status_code: int = 200, **extra: Any) -> Response:
    try:
        history = await _history(scoring)
    except ServiceUnavailable:
        return await render(request, "scoring_model/index.html", {"unavailable": True})
    context = {"unavailable": False, "text": text, "problems": problems,
               "lines": source_lines.numbered(text, problems), "loaded": loaded, "validation": None,
               "dry_run": None, "last_n": DRY_RUN_DEFAULT_LEADS, "max_leads": DRY_RUN_MAX_LEADS, **history, **extra}
    return await render(request, "scoring_model/index.html", context, status_code=status_code)


@router.get("", response_class=HTMLResponse,
            summary="The active scoring model in an editor (or the version `edit` names), its versions and activations")
@degrades(HOME)
async def model_page(request: Request, user: MarketingOps, console: ConsoleDep,
                     edit: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")] = None
                     ) -> Response:
    scoring = console.clients.scoring
    try:
        model_id = edit or (await scoring.get(f"{MODELS}/active"))["id"]
        source = (await scoring.request("GET", f"{MODELS}/{model_id}/source")).text
    except ServiceUnavailable:
        return await render(request, "scoring_model/index.html", {"unavailable": True})
    except ServiceError as exc:
        if exc.status != 404 or edit is not None:
            raise
        model_id, source = None, ""  # no model was ever activated
    return await _editor(request, scoring, source, problems=[], loaded=model_id)


def _problems(parsed: source_lines.Parsed, exc: ServiceError) -> list[source_lines.Problem]:
    if exc.errors:
        return source_lines.place(parsed.root, exc.errors)
    return [source_lines.Problem("model", exc.detail)]


@router.post("", response_class=HTMLResponse,
             summary="Validate, dry-run, save, or save and activate the model in the editor",
             responses={303: {"description": "Saved (and activated): back to the editor"},
                        422: {"description": "The model is invalid: each problem shown at its line"}})
@degrades(HOME)
async def model_action(request: Request, user: MarketingOps, console: ConsoleDep,
                       model: Annotated[str, Form(max_length=MAX_MODEL_CHARS)] = "",
                       action: Annotated[Action, Form()] = "validate",
                       last_n: Annotated[int, Form(ge=1, le=DRY_RUN_MAX_LEADS)] = DRY_RUN_DEFAULT_LEADS) -> Response:
    scoring = console.clients.scoring
    text = model.replace("\r\n", "\n")
    parsed = source_lines.parse(text)
    if not parsed.ok:
        return await _editor(request, scoring, text, problems=parsed.problems, loaded=None, status_code=422,
                             last_n=last_n)
    try:
        if action == "validate":
            report = (await scoring.request("POST", f"{MODELS}/validate", content=text.encode(),
                                            headers=YAML_HEADERS)).json()
            problems = source_lines.place(parsed.root, report.get("errors") or [])
            return await _editor(request, scoring, text, problems=problems, loaded=None, last_n=last_n,
                                 status_code=200 if report.get("valid") else 422,
                                 validation=report if report.get("valid") else None)
        if action == "dry_run":
            result = await scoring.post(f"{MODELS}/dry-run", {"model": text, "last_n": last_n})
            return await _editor(request, scoring, text, problems=[], loaded=None, last_n=last_n, dry_run=result)
        saved = (await scoring.request("POST", MODELS, content=text.encode(), headers=YAML_HEADERS)).json()
    except ServiceError as exc:
        if exc.status not in (400, 409, 413, 422):
            raise
        return await _editor(request, scoring, text, problems=_problems(parsed, exc), loaded=None, status_code=422,
                             last_n=last_n)
    if action == "activate":
        await scoring.post(f"{MODELS}/{saved['id']}/activate")
        return redirect(request, "/scoring-model", f"Saved and activated {saved['id']}: new scores use it now.")
    return redirect(request, f"/scoring-model?edit={saved['id']}",
                    f"Saved {saved['id']} as a draft (not active).")


@router.post("/versions/{model_id}/activate", summary="Make a saved version the active model",
             responses={303: {"description": "Activated: to the editor"}})
@degrades(HOME)
async def activate_version(request: Request, user: MarketingOps, console: ConsoleDep, model_id: ModelId) -> Response:
    try:
        await console.clients.scoring.post(f"{MODELS}/{model_id}/activate")
    except ServiceError as exc:
        if exc.status not in (404, 409, 422):
            raise
        return redirect(request, "/scoring-model", f"{model_id} cannot be activated: {exc.detail}", kind="error")
    return redirect(request, "/scoring-model", f"{model_id} is now the active scoring model.")


@router.post("/rollback", summary="Undo the latest activation: the model active before it is active again",
             responses={303: {"description": "Rolled back: to the editor"}})
@degrades(HOME)
async def rollback(request: Request, user: MarketingOps, console: ConsoleDep) -> Response:
    try:
        result = await console.clients.scoring.post(f"{MODELS}/rollback")
    except ServiceError as exc:
        if exc.status != 409:
            raise
        return redirect(request, "/scoring-model", f"Nothing to roll back: {exc.detail}", kind="error")
    return redirect(request, "/scoring-model",
                    f"Rolled back: {result['active_model']} is the active scoring model again.")


page = Page(router, nav=(NavItem("Scoring model", "/scoring-model", ("marketing_ops",)),))
