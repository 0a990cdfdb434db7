"""Capture's forms: list, create and edit, the embed snippet to copy, and a live preview that posts to the real
capture from the browser (CORS: the console's origin must be one of the form's allowed origins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceUnavailable
from leadflow_console.deps import ConsoleDep, request_console
from leadflow_console.edits import (
    FieldErrors,
    attempt,
    mapping_lines,
    mapping_text,
    optional_float,
    optional_text,
    text_list,
)
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render

router = APIRouter(tags=["forms"])
Editor = Annotated[User, Depends(require_roles("marketing_ops"))]
FormKey = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]

FIELDS = ("key", "name", "field_mapping", "required_fields", "allowed_origins", "success_url", "error_url",
          "consent_required", "consent_text", "consent_version", "honeypot_field", "min_fill_seconds")
# The lead fields a preview always offers (a person's contact details); the form's mapping adds its own.
PREVIEW_FIELDS = ("email", "first_name", "last_name", "company", "job_title")
CONSENT_FIELD = "consent"
ALIASES = {"form_key": "key"}


class FormBoxes(BaseModel):
    """The form editor's boxes as posted (text; lists one item a line or comma-separated)."""

    key: str = Field(default="", max_length=100)
    name: str = Field(default="", max_length=255)
    field_mapping: str = Field(default="", max_length=20_000)
    required_fields: str = Field(default="email", max_length=5_000)
    allowed_origins: str = Field(default="", max_length=20_000)
    success_url: str = Field(default="", max_length=2_000)
    error_url: str = Field(default="", max_length=2_000)
    consent_required: bool = False
    consent_text: str = Field(default="", max_length=5_000)
    consent_version: str = Field(default="", max_length=64)
    honeypot_field: str = Field(default="_hp", max_length=100)
    min_fill_seconds: str = Field(default="0", max_length=20)

    def definition(self) -> dict[str, Any]:
        """The body capture's form admin API takes (without ``key``); InputProblem names a box it cannot read."""
        return {
            "name": self.name.strip(),
            "field_mapping": mapping_lines("field_mapping", self.field_mapping),
            "required_fields": text_list(self.required_fields),
            "allowed_origins": text_list(self.allowed_origins),
            "success_url": optional_text(self.success_url),
            "error_url": optional_text(self.error_url),
            "consent_required": self.consent_required,
            "consent_text": optional_text(self.consent_text),
            "consent_version": optional_text(self.consent_version),
            "honeypot_field": self.honeypot_field.strip() or "_hp",
            "min_fill_seconds": optional_float("min_fill_seconds", self.min_fill_seconds) or 0,
        }

    @classmethod
    def of(cls, form: dict[str, Any]) -> FormBoxes:
        return cls(
            key=form["key"], name=form["name"], field_mapping=mapping_text(form.get("field_mapping") or {}),
            required_fields=", ".join(form.get("required_fields") or []),
            allowed_origins="\n".join(form.get("allowed_origins") or []),
            success_url=form.get("success_url") or "", error_url=form.get("error_url") or "",
            consent_required=bool(form.get("consent_required")), consent_text=form.get("consent_text") or "",
            consent_version=form.get("consent_version") or "", honeypot_field=form.get("honeypot_field") or "_hp",
            min_fill_seconds=f"{form.get('min_fill_seconds') or 0:g}",
        )


@dataclass(frozen=True)
class PreviewField:
    """One input of the preview (and of the embed snippet): posted as ``name``, stored as ``canonical``."""

    name: str
    canonical: str
    required: bool

    @property
    def label(self) -> str:
        text = self.canonical.replace("_", " ").capitalize()
        return text if self.name == self.canonical else f"{text} ({self.name})"

    @property
    def input_type(self) -> str:
        return "email" if self.canonical == "email" else "text"


def preview_fields(form: dict[str, Any]) -> list[PreviewField]:
    """The inputs a page for ``form`` would have: its mapped fields, every required one and the contact basics,
    each under the name the page posts (consent is a checkbox of its own)."""
    mapping: dict[str, str] = form.get("field_mapping") or {}
    required = set(form.get("required_fields") or [])
    posted_name = {canonical: posted for posted, canonical in reversed(list(mapping.items()))}
    canonicals = list(dict.fromkeys([*PREVIEW_FIELDS, *(form.get("required_fields") or []), *mapping.values()]))
    return [PreviewField(posted_name.get(c, c), c, c in required) for c in canonicals if c != CONSENT_FIELD]


def consent_name(form: dict[str, Any]) -> str:
    mapping: dict[str, str] = form.get("field_mapping") or {}
    return next((posted for posted, canonical in mapping.items() if canonical == CONSENT_FIELD), CONSENT_FIELD)


def embed_snippet(form: dict[str, Any], capture_url: str) -> str:
    """The HTML a web page pastes: a plain form capture's embed script turns into a LeadFlow form."""
    key = form["key"]
    lines = [f'<form data-leadflow-form="{key}">']
    for item in preview_fields(form):
        attrs = ' required' if item.required else ''
        lines.append(f'  <label for="lf-{item.name}">{item.label}</label>')
        lines.append(f'  <input id="lf-{item.name}" name="{item.name}" type="{item.input_type}"{attrs}>')
    if form.get("consent_required"):
        name = consent_name(form)
        lines.append(f'  <label><input name="{name}" type="checkbox" value="yes" required> '
                     f'{form.get("consent_text") or "I agree"}</label>')
    lines.append('  <button type="submit">Send</button>')
    lines.append("</form>")
    lines.append(f'<script src="{capture_url}{form["embed_url"]}" async></script>')
    return "\n".join(lines)


def console_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def origin_allowed(form: dict[str, Any], origin: str) -> bool:
    allowed = form.get("allowed_origins") or []
    return "*" in allowed or origin in allowed


# -- pages ----------------------------------------------------------------------------------


@router.get("/forms", response_class=HTMLResponse, summary="Capture's forms")
async def list_forms(request: Request, user: Editor, console: ConsoleDep) -> Response:
    try:
        forms = await console.clients.capture.get("/v1/admin/forms")
    except ServiceUnavailable:
        forms = None
    return await render(request, "forms/list.html", {"forms": forms})


@router.get("/forms/new", response_class=HTMLResponse, summary="A new form")
async def new_form(request: Request, user: Editor) -> Response:
    return await _editor(request, FormBoxes(), None, FieldErrors())


@router.post("/forms/new", response_class=HTMLResponse, summary="Create a form",
             responses={303: {"description": "Created: to its page"}, 422: {"description": "Refused; see the page"}})
async def create_form(request: Request, user: Editor, console: ConsoleDep,
                      boxes: Annotated[FormBoxes, Form()]) -> Response:
    created = await attempt(lambda: console.clients.capture.post(
        "/v1/admin/forms", json={"key": boxes.key.strip(), **boxes.definition()}), FIELDS, ALIASES)
    if isinstance(created, FieldErrors):
        return await _editor(request, boxes, None, created, status_code=422)
    return redirect(request, f"/forms/{quote(created['key'])}", f"Form '{created['key']}' created.")


@router.get("/forms/{form_key}", response_class=HTMLResponse, summary="One form: edit it, its embed snippet")
async def edit_form(request: Request, form_key: FormKey, user: Editor, console: ConsoleDep) -> Response:
    form = await console.clients.capture.get(f"/v1/admin/forms/{form_key}")
    return await _editor(request, FormBoxes.of(form), form, FieldErrors())


@router.post("/forms/{form_key}", response_class=HTMLResponse, summary="Change a form",
             responses={303: {"description": "Saved"}, 422: {"description": "Refused; see the page"}})
async def update_form(request: Request, form_key: FormKey, user: Editor, console: ConsoleDep,
                      boxes: Annotated[FormBoxes, Form()]) -> Response:
    form = await console.clients.capture.get(f"/v1/admin/forms/{form_key}")
    boxes.key = form_key
    saved = await attempt(lambda: console.clients.capture.patch(f"/v1/admin/forms/{form_key}",
                                                                json=boxes.definition()), FIELDS, ALIASES)
    if isinstance(saved, FieldErrors):
        return await _editor(request, boxes, form, saved, status_code=422)
    return redirect(request, f"/forms/{form_key}", "Form saved.")


@router.post("/forms/{form_key}/status", response_class=HTMLResponse, summary="Archive or restore a form",
             responses={303: {"description": "Done"}})
async def set_form_status(request: Request, form_key: FormKey, user: Editor, console: ConsoleDep,
                          status: Annotated[str, Form(pattern="^(active|archived)$")]) -> Response:
    await console.clients.capture.patch(f"/v1/admin/forms/{form_key}", json={"status": status})
    message = "Form archived: its fills are now refused." if status == "archived" else "Form restored."
    return redirect(request, f"/forms/{form_key}", message)


@router.get("/forms/{form_key}/preview", response_class=HTMLResponse,
            summary="The form live: a fill posts to the real capture from this browser")
async def preview_form(request: Request, form_key: FormKey, user: Editor, console: ConsoleDep) -> Response:
    form = await console.clients.capture.get(f"/v1/admin/forms/{form_key}")
    origin = console_origin(request)
    capture_url = console.settings.capture_public()
    return await render(request, "forms/preview.html", {
        "form": form, "fields": preview_fields(form), "consent_name": consent_name(form), "origin": origin,
        "origin_allowed": origin_allowed(form, origin), "endpoint": f"{capture_url}{form['submission_url']}",
    })


@router.post("/forms/{form_key}/preview/allow", response_class=HTMLResponse,
             summary="Add this console's origin to the form's allowed origins, so its preview may post",
             responses={303: {"description": "To the preview"}})
async def allow_preview(request: Request, form_key: FormKey, user: Editor, console: ConsoleDep) -> Response:
    form = await console.clients.capture.get(f"/v1/admin/forms/{form_key}")
    origin = console_origin(request)
    if not origin_allowed(form, origin):
        await console.clients.capture.patch(f"/v1/admin/forms/{form_key}",
                                            json={"allowed_origins": [*form["allowed_origins"], origin]})
    return redirect(request, f"/forms/{form_key}/preview", f"{origin} may now post to this form.")


async def _editor(request: Request, boxes: FormBoxes, form: dict[str, Any] | None, errors: FieldErrors, *,
                  status_code: int = 200) -> HTMLResponse:
    capture_url = request_console(request).settings.capture_public()
    return await render(request, "forms/edit.html", {
        "boxes": boxes, "form": form, "errors": errors,
        "snippet": embed_snippet(form, capture_url) if form is not None else None,
    }, status_code=status_code)


page = Page(router, (NavItem("Forms", "/forms", ("marketing_ops",)),))
