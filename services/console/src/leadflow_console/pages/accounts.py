"""Enrichment's account directory: search it, and import accounts from a CSV with the result (rows created,
replaced, and those refused with their line and reason, e.g. a free-mail domain)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep
from leadflow_console.edits import is_refusal
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import render

router = APIRouter(tags=["accounts"])
Admin = Annotated[User, Depends(require_roles("admin"))]
# Enrichment's own import limit is its setting; the console refuses more than this before sending it.
MAX_CSV_BYTES = 10 * 1024 * 1024
PAGE_SIZE = 100
CSV_COLUMNS = ("id, name, domains (separated by ;), industry, employee_count, annual_revenue, country, "
               "owner_rep_id, tier")


@router.get("/accounts", response_class=HTMLResponse, summary="The account directory")
async def accounts(request: Request, user: Admin, console: ConsoleDep,
                   q: Annotated[str, Query(max_length=255)] = "",
                   offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    try:
        found = await console.clients.enrichment.get("/v1/admin/accounts",
                                                     {"q": q.strip(), "limit": PAGE_SIZE, "offset": offset})
    except ServiceUnavailable:
        found = None
    return await render(request, "accounts/list.html", {
        "accounts": found, "q": q, "offset": offset, "page_size": PAGE_SIZE, "columns": CSV_COLUMNS})


@router.post("/accounts/import", response_class=HTMLResponse, summary="Import accounts from a CSV file",
             responses={200: {"description": "The import's result"},
                        422: {"description": "Not a CSV enrichment can read; the page says why"}})
async def import_accounts(request: Request, user: Admin,
                          console: ConsoleDep, csv_file: Annotated[UploadFile, File()]) -> Response:
    content = await csv_file.read(MAX_CSV_BYTES + 1)
    problem = None
    result = None
    if not content:
        problem = "Choose a CSV file with a header row and at least one account."
    elif len(content) > MAX_CSV_BYTES:
        problem = f"The file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB; split it."
    else:
        try:
            response = await console.clients.enrichment.request(
                "POST", "/v1/admin/accounts/import", content=content, headers={"content-type": "text/csv"})
            result = response.json()
        except ServiceError as exc:
            if not is_refusal(exc):
                raise
            problem = f"Enrichment refused the file: {exc.detail}"
    return await render(request, "accounts/import.html", {
        "result": result, "problem": problem, "filename": csv_file.filename or "the file", "columns": CSV_COLUMNS,
    }, status_code=422 if problem else 200)


page = Page(router, (NavItem("Accounts", "/accounts", ()),))
