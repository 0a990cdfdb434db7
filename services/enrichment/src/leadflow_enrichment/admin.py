"""The account directory, administered: create, import, match, change and remove accounts
(accounts:read / accounts:write); thin over the store."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadflow_contracts import AccountMatch, LeadContact
from leadflow_enrichment import accounts, domain, normalize
from leadflow_enrichment.accounts import (
    AccountCreate,
    AccountPublic,
    AccountUpdate,
    CsvUnreadable,
    ImportResult,
)
from leadflow_enrichment.bootstrap import DepsDep
from leadflow_kit.auth import require_scope
from leadflow_kit.bodies import body_limit
from leadflow_kit.errors import FieldError

accounts_router = APIRouter(prefix="/v1/admin/accounts", tags=["accounts"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such account",
                   "content": {"application/json": {"example": {"detail": "no account 'acct-x'"}}}}}


CSV_EXAMPLE = ("id,name,domains,industry,employee_count,annual_revenue,country,owner_rep_id,tier\n"
               "acct-acme,Acme Inc.,acme.com;acme.io,Software,1200,250000000,US,rep-ada,enterprise\n")


def _not_found(account_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no account '{account_id}'")


@accounts_router.post("", status_code=201, response_model=AccountPublic, summary="Create or replace an account",
                      dependencies=[Depends(require_scope("accounts:write"))])
async def create_account(body: AccountCreate, deps: DepsDep) -> AccountPublic:
    async with deps.platform.db.transaction() as session:
        if body.id is None:
            body = body.model_copy(update={"id": f"acct-{uuid.uuid4().hex[:16]}"})
        await deps.store.upsert_accounts(session, [body], deps.platform.clock.now())
        created = await deps.store.get_account(session, body.id or "")
    assert created is not None
    return created


@accounts_router.get("", response_model=list[AccountPublic], summary="List accounts (search by name or domain)",
                     dependencies=[Depends(require_scope("accounts:read"))])
async def list_accounts(deps: DepsDep, q: str | None = Query(default=None, max_length=255),
                        limit: int = Query(default=100, ge=1, le=1000),
                        offset: int = Query(default=0, ge=0)) -> list[AccountPublic]:
    async with deps.platform.db.transaction() as session:
        return await deps.store.list_accounts(session, q, limit, offset)


@accounts_router.post(
    "/import", response_model=ImportResult, summary="Import accounts from CSV (create or replace)",
    dependencies=[Depends(require_scope("accounts:write"))],
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"},
                   "example": CSV_EXAMPLE}}}},
    responses={422: {"description": "Not a readable CSV", "content": {"application/json": {"example": {
        "detail": "the CSV needs a 'name' column", "errors": [{"field": "body", "code": "csv", "message": "..."}]}}}}},
)
@body_limit("account_import_max_bytes")
async def import_accounts(request: Request, deps: DepsDep) -> ImportResult:
    body = await request.body()
    try:
        parsed = accounts.parse_accounts_csv(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, CsvUnreadable) as exc:
        message = str(exc) if isinstance(exc, CsvUnreadable) else "the CSV is not UTF-8"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={
            "detail": message, "errors": [FieldError(field="body", code="csv", message=message).model_dump()]
        }) from exc
    async with deps.platform.db.transaction() as session:
        created, updated = await deps.store.upsert_accounts(session, parsed.accounts, deps.platform.clock.now())
    return ImportResult(created=created, updated=updated, rejected=parsed.rejected, errors=parsed.errors)


class MatchPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "company_domain": "analytical-engines.example", "name_key": "analytical engines",
        "match": {"account_id": "acct-1042", "name": "Analytical Engines Ltd", "domain": "analytical-engines.example",
                  "method": "domain", "confidence": 1.0, "owner_rep_id": "rep-ada", "tier": "enterprise"}}]})

    company_domain: str | None = Field(description="The domain the lead would be matched by")
    name_key: str | None = Field(description="The company name as fuzzy matching compares it")
    match: AccountMatch | None


@accounts_router.get("/match", response_model=MatchPublic, summary="Which account a lead would match (dry run)",
                     description="Runs the domain-then-fuzzy-name match for the given email, website and company "
                                 "without storing anything, to check the directory or the threshold.",
                     dependencies=[Depends(require_scope("accounts:read"))])
async def match_account(deps: DepsDep, email: str | None = Query(default=None, max_length=320),
                        website: str | None = Query(default=None, max_length=2000),
                        company: str | None = Query(default=None, max_length=255)) -> MatchPublic:
    profile = domain.normalize_contact(LeadContact(email=email, website=website, company=company)).profile
    async with deps.platform.db.transaction() as session:
        matched = await deps.directory.match_lead(session, profile)
    return MatchPublic(company_domain=profile.company_domain, name_key=normalize.company_key(profile.company),
                       match=matched.match if matched is not None else None)


@accounts_router.get("/{account_id}", response_model=AccountPublic, summary="One account", responses=NOT_FOUND,
                     dependencies=[Depends(require_scope("accounts:read"))])
async def get_account(account_id: str, deps: DepsDep) -> AccountPublic:
    async with deps.platform.db.transaction() as session:
        found = await deps.store.get_account(session, account_id)
    if found is None:
        raise _not_found(account_id)
    return found


@accounts_router.patch("/{account_id}", response_model=AccountPublic, summary="Change some fields of an account",
                       responses=NOT_FOUND, dependencies=[Depends(require_scope("accounts:write"))])
async def update_account(account_id: str, body: AccountUpdate, deps: DepsDep) -> AccountPublic:
    try:
        async with deps.platform.db.transaction() as session:
            found = await deps.store.update_account(session, account_id, body, deps.platform.clock.now())
    except ValidationError as exc:
        # The account as changed is not a valid account (e.g. name set to null).
        raise RequestValidationError(exc.errors()) from None
    if found is None:
        raise _not_found(account_id)
    return found


@accounts_router.delete("/{account_id}", status_code=204, summary="Remove an account", responses=NOT_FOUND,
                        dependencies=[Depends(require_scope("accounts:write"))])
async def delete_account(account_id: str, deps: DepsDep) -> None:
    async with deps.platform.db.transaction() as session:
        deleted = await deps.store.delete_account(session, account_id)
    if not deleted:
        raise _not_found(account_id)
