"""API keys with scopes, stored as SHA-256 hashes; the plain key is shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from leadflow_kit.db import Database, new_metadata

api_key_table = new_metadata().tables["api_key"]

ALL_SCOPES = "*"
KEY_PREFIX = "lf_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return ALL_SCOPES in self.scopes or scope in self.scopes or f"{scope.split(':')[0]}:*" in self.scopes


# What fits the api_key columns: scopes are printable ASCII words, names have no control characters.
Scope = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$", examples=["hubspot-integration"])
    scopes: list[Scope] = Field(min_length=1, max_length=100, examples=[["crm:events"]])


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "3f1c2b7a-9d4e-4f61-8a0b-5c2d7e9f1a23", "name": "hubspot-integration", "key_prefix": "lf_Xy7Q9",
        "scopes": ["crm:events"], "created_at": "2026-11-23T09:00:00Z", "revoked_at": None,
        "last_used_at": "2026-11-23T09:30:00Z",
    }]})

    id: str
    name: str
    key_prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself; shown only in this response")


async def ensure_bootstrap_key(db: Database, key: str, name: str = "bootstrap") -> None:
    """Make the configured admin key valid with every scope (idempotent)."""
    async with db.transaction() as session:
        await session.execute(
            insert(api_key_table)
            .values(id=f"bootstrap-{hash_key(key)[:12]}", name=name, key_prefix=key[:8],
                    key_hash=hash_key(key), scopes=[ALL_SCOPES])
            .on_conflict_do_nothing()
        )


async def authenticate(db: Database, key: str) -> Principal | None:
    async with db.transaction() as session:
        row = (
            await session.execute(
                update(api_key_table)
                .where(api_key_table.c.key_hash == hash_key(key), api_key_table.c.revoked_at.is_(None))
                .values(last_used_at=datetime.now().astimezone())
                .returning(api_key_table.c.id, api_key_table.c.name, api_key_table.c.scopes)
            )
        ).first()
    return Principal(row.id, row.name, frozenset(row.scopes)) if row else None


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require_scope(*scopes: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: 401 without a valid key, 403 without one of ``scopes``.

    It also runs before a route reads its body (``leadflow_kit.bodies``), found by ``required_scope``;
    the key is then looked up once per request.
    """

    async def dependency(request: Request) -> Principal:
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):
            principal = await _authenticated(request)
            request.state.principal = principal
        if not any(principal.allows(scope) for scope in scopes):
            lacking = f"the scope '{scopes[0]}'" if len(scopes) == 1 else f"one of the scopes {list(scopes)}"
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"API key lacks {lacking}")
        return principal

    dependency.required_scope = scopes  # type: ignore[attr-defined]
    return dependency


async def _authenticated(request: Request) -> Principal:
    key = presented_key(request)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await authenticate(request.app.state.db, key)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="API key is unknown or revoked",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


def api_key_router() -> APIRouter:
    router = APIRouter(prefix="/v1/admin/api-keys", tags=["api keys"])

    def public(row: object) -> ApiKeyPublic:
        return ApiKeyPublic.model_validate(row, from_attributes=True)

    @router.post("", status_code=201, response_model=ApiKeyCreated, summary="Create an API key (shown once)",
                 dependencies=[Depends(require_scope("api-keys:write"))])
    async def create_api_key(body: ApiKeyCreate, request: Request) -> ApiKeyCreated:
        key = generate_key()
        async with request.app.state.db.transaction() as session:
            row = (
                await session.execute(
                    insert(api_key_table)
                    .values(id=str(uuid.uuid4()), name=body.name, key_prefix=key[:8],
                            key_hash=hash_key(key), scopes=sorted(set(body.scopes)))
                    .returning(*api_key_table.c)
                )
            ).one()
        return ApiKeyCreated(**public(row).model_dump(), key=key)

    @router.get("", response_model=list[ApiKeyPublic], summary="List API keys (never the keys themselves)",
                dependencies=[Depends(require_scope("api-keys:read"))])
    async def list_api_keys(request: Request) -> list[ApiKeyPublic]:
        async with request.app.state.db.transaction() as session:
            rows = (await session.execute(select(api_key_table).order_by(api_key_table.c.created_at))).all()
        return [public(r) for r in rows]

    @router.delete("/{key_id}", status_code=204, dependencies=[Depends(require_scope("api-keys:write"))],
                   summary="Revoke an API key", responses={404: {"description": "No such key", "content": {
                       "application/json": {"example": {"detail": "no active API key 'k1'"}}}}})
    async def revoke_api_key(key_id: str, request: Request) -> None:
        async with request.app.state.db.transaction() as session:
            revoked = (
                await session.execute(
                    update(api_key_table)
                    .where(api_key_table.c.id == key_id, api_key_table.c.revoked_at.is_(None))
                    .values(revoked_at=datetime.now().astimezone())
                    .returning(api_key_table.c.id)
                )
            ).first()
        if revoked is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no active API key '{key_id}'")

    return router
