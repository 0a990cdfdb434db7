"""Routing rules: the active rule set and its versions, a draft edited as YAML, a dry run of a version over
the last N leads (where each would go under the active rules and under the draft), activation and
roll-back. Routing keeps every version; a draft is a version saved without activating it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from leadflow_console import source_lines
from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceClients, ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render
from leadflow_console.unavailable import degrades

HOME = "/routing-rules"
router = APIRouter(prefix=HOME, tags=["routing rules"])

RULES = "/v1/admin/routing-rules"
MAX_DRAFT_CHARS = 200_000
DRY_RUN_DEFAULT_LEADS = 20
DRY_RUN_MAX_LEADS = 100
# Routing answers each lead's dry run on its own; a few at a time keeps a 100-lead run to a second or two.
DRY_RUN_CONCURRENCY = 8

Manager = Annotated[User, Depends(require_roles("sales_manager"))]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


def draft_text(ruleset: dict[str, Any]) -> str:
    """A saved rule set as the YAML a draft starts from (nulls left out: a rule names a team or a rep)."""
    rules = [{key: value for key, value in rule.items() if value is not None} for rule in ruleset.get("rules") or []]
    document = {"rules": rules, "fallback_queue": ruleset.get("fallback_queue"),
                "handoff": ruleset.get("handoff"), "comment": ruleset.get("comment")}
    return yaml.safe_dump({k: v for k, v in document.items() if v is not None}, sort_keys=False, allow_unicode=True,
                          width=100)


EMPTY_DRAFT = draft_text({"rules": [{"id": "everyone", "name": "Every lead", "match": "all", "conditions": [],
                                     "team_id": "sales", "enabled": True}], "handoff": "mql"})


def _previous_version(versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The version active before the current one (the one a roll-back returns to): the one activated last,
    or, when none was activated through the API, the latest older one (routing seeds version 1 active)."""
    active = next((v for v in versions if v.get("active")), None)
    earlier = [v for v in versions if not v.get("active") and v.get("activated_at")]
    if earlier:
        return max(earlier, key=lambda v: str(v["activated_at"]))
    older = [v for v in versions if active is not None and v["version"] < active["version"]]
    return max(older, key=lambda v: int(v["version"])) if older else None


@router.get("", response_class=HTMLResponse, summary="The active routing rules and every version")
@degrades(HOME)
async def rules_page(request: Request, user: Manager, console: ConsoleDep) -> Response:
    routing = console.clients.routing
    try:
        versions: list[dict[str, Any]] = await routing.get(f"{RULES}/versions")
    except ServiceUnavailable:
        return await render(request, "routing_rules/index.html", {"unavailable": True})
    active = next((v for v in versions if v.get("active")), None)
    return await render(request, "routing_rules/index.html", {
        "active": active, "versions": versions, "previous": _previous_version(versions), "unavailable": False})


@router.get("/draft", response_class=HTMLResponse,
            summary="Edit a draft, starting from a version (`start`; default: the active one)")
@degrades(HOME)
async def draft_page(request: Request, user: Manager, console: ConsoleDep,
                     start: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
    source = await _starting_point(console.clients, start)
    return await _draft_form(request, source, [], base=start)


async def _starting_point(clients: ServiceClients, version: int | None) -> str:
    try:
        ruleset = await clients.routing.get(f"{RULES}/versions/{version}" if version else RULES)
    except ServiceError as exc:
        if exc.status == 404 and version is None:
            return EMPTY_DRAFT  # no rules were ever saved
        raise
    return draft_text(ruleset)


async def _draft_form(request: Request, text: str, problems: list[source_lines.Problem], *, base: int | None,
                      status_code: int = 200) -> Response:
    return await render(request, "routing_rules/draft.html", {
        "text": text, "problems": problems, "lines": source_lines.numbered(text, problems), "base": base},
        status_code=status_code)


@router.post("/draft", response_class=HTMLResponse, summary="Save the draft as a new, inactive version",
             responses={303: {"description": "Saved: to the version's page"},
                        422: {"description": "The draft is invalid: each problem shown at its line"}})
@degrades(HOME)
async def save_draft(request: Request, user: Manager, console: ConsoleDep,
                     rules: Annotated[str, Form(max_length=MAX_DRAFT_CHARS)] = "") -> Response:
    text = rules.replace("\r\n", "\n")
    parsed = source_lines.parse(text)
    if not parsed.ok:
        return await _draft_form(request, text, parsed.problems, base=None, status_code=422)
    document = parsed.document
    if isinstance(document, list):
        document = {"rules": document}
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        problem = source_lines.Problem("rules", "the draft must hold a list of rules under 'rules:'", 1)
        return await _draft_form(request, text, [problem], base=None, status_code=422)
    body = {**document, "activate": False}
    body.setdefault("comment", f"edited in the console by {user.username}")
    try:
        saved = await console.clients.routing.post(RULES, body)
    except ServiceError as exc:
        if exc.status not in (400, 409, 422):
            raise
        problems = (source_lines.place(parsed.root, exc.errors) if exc.errors
                    else [source_lines.Problem("rules", exc.detail)])
        return await _draft_form(request, text, problems, base=None, status_code=422)
    return redirect(request, f"/routing-rules/versions/{saved['version']}",
                    f"Saved as version {saved['version']}, not active yet: dry-run it, then activate it.")


@router.get("/versions/{version}", response_class=HTMLResponse, summary="One version: its rules, dry run, activate")
@degrades(HOME)
async def version_page(request: Request, user: Manager, console: ConsoleDep, version: Version) -> Response:
    ruleset = await console.clients.routing.get(f"{RULES}/versions/{version}")
    return await render(request, "routing_rules/version.html", {
        "ruleset": ruleset, "dry_run": None, "last_n": DRY_RUN_DEFAULT_LEADS, "max_leads": DRY_RUN_MAX_LEADS})


@dataclass(frozen=True)
class DryRunRow:
    lead_id: str
    lead_label: str
    before: str
    before_rule: str
    after: str
    after_rule: str
    changed: bool
    note: str = ""


@dataclass(frozen=True)
class DryRunReport:
    version: int
    active_version: int | None
    rows: list[DryRunRow]
    unavailable: str | None = None

    @property
    def changed(self) -> int:
        return sum(1 for row in self.rows if row.changed)


def destination(decision: dict[str, Any]) -> str:
    """Where a dry run sends the lead, as a person reads it."""
    owner = decision.get("owner")
    if decision.get("handoff", {}).get("held_in_nurture"):
        where = "nurture (not an MQL yet)"
    elif isinstance(owner, dict):
        where = f"{owner.get('name') or owner.get('rep_id')} ({owner.get('rep_id')})"
    elif decision.get("queue"):
        where = f"queue {decision['queue']}"
    else:
        where = str(decision.get("outcome") or "nowhere")
    return where


def _target(decision: dict[str, Any]) -> tuple[Any, Any, bool]:
    owner = decision.get("owner")
    return ((owner or {}).get("rep_id"), decision.get("queue"),
            bool(decision.get("handoff", {}).get("held_in_nurture")))


async def dry_run(clients: ServiceClients, version: int, last_n: int) -> DryRunReport:
    """Each of the ``last_n`` leads captured last, routed by the active rules and by ``version``."""
    try:
        found = await clients.sla.get("/v1/leads", {"limit": last_n, "sort": "-captured_at"})
        active = await clients.routing.get(RULES)
    except ServiceUnavailable as exc:
        return DryRunReport(version, None, [], unavailable=exc.service)
    except ServiceError as exc:
        if exc.status != 404:
            raise
        active = None
    gate = asyncio.Semaphore(DRY_RUN_CONCURRENCY)

    async def one(lead: dict[str, Any]) -> DryRunRow:
        label = lead.get("email") or lead.get("name") or lead["lead_id"]
        async with gate:
            try:
                before = (await clients.routing.post(f"{RULES}/dry-run", {"lead_id": lead["lead_id"]})
                          if active is not None else None)
                after = await clients.routing.post(f"{RULES}/dry-run", {"lead_id": lead["lead_id"],
                                                                        "version": version})
            except ServiceError as exc:
                if exc.status != 404:
                    raise
                return DryRunRow(lead["lead_id"], label, "", "", "", "", False,
                                 note="routing has not seen this lead yet")
        return DryRunRow(lead["lead_id"], label,
                         destination(before) if before else "(no active rules)",
                         (before or {}).get("rule_id") or "", destination(after), after.get("rule_id") or "",
                         before is None or _target(before) != _target(after))

    try:
        rows = await asyncio.gather(*(one(lead) for lead in found.get("leads", [])))
    except ServiceUnavailable as exc:
        return DryRunReport(version, None, [], unavailable=exc.service)
    return DryRunReport(version, active["version"] if active else None, list(rows))


@router.post("/versions/{version}/dry-run", response_class=HTMLResponse,
             summary="Route the last N leads by the active rules and by this version, side by side")
@degrades(HOME)
async def dry_run_version(request: Request, user: Manager, console: ConsoleDep, version: Version,
                          last_n: Annotated[int, Form(ge=1, le=DRY_RUN_MAX_LEADS)] = DRY_RUN_DEFAULT_LEADS
                          ) -> Response:
    report = await dry_run(console.clients, version, last_n)
    if request.headers.get("hx-request"):
        return await render(request, "routing_rules/dry_run.html", {"dry_run": report})
    ruleset = await console.clients.routing.get(f"{RULES}/versions/{version}")
    return await render(request, "routing_rules/version.html", {
        "ruleset": ruleset, "dry_run": report, "last_n": last_n, "max_leads": DRY_RUN_MAX_LEADS})


@router.post("/versions/{version}/activate", summary="Make this version the active one (also a roll-back)",
             responses={303: {"description": "Activated: to the rules page"}})
@degrades(HOME)
async def activate_version(request: Request, user: Manager, console: ConsoleDep, version: Version) -> Response:
    try:
        await console.clients.routing.post(f"{RULES}/versions/{version}/activate")
    except ServiceError as exc:
        if exc.status != 422:
            raise
        problems = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in exc.errors) or exc.detail
        return redirect(request, f"/routing-rules/versions/{version}",
                        f"Version {version} cannot be activated: {problems}", kind="error")
    return redirect(request, "/routing-rules", f"Version {version} is now the active routing rules.")


page = Page(router, nav=(NavItem("Routing rules", "/routing-rules", ("sales_manager",)),))
