"""API keys with scopes, stored as SHA-256 hashes; the plain key is shown once, at creation.

A key reads ``lf_<public id>_<secret>``. Listings show the public id (random, never part of the
secret); a key mints and revokes only keys within its own scopes; the bootstrap key follows the
settings: configuring another one revokes the old.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from leadflow_kit.db import Database, new_metadata
from leadflow_kit.platform import PlatformDep, request_platform

log = logging.getLogger(__name__)

api_key_table = new_metadata().tables["api_key"]

ALL_SCOPES = "*"
KEY_PREFIX = "lf_"
BOOTSTRAP_ID_PREFIX = "bootstrap-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_public_id() -> str:
    return secrets.token_hex(6)


def generate_key(public_id: str | None = None) -> str:
    """``lf_<public id>_<secret>``: 256 random bits of secret; the public id only names the key."""
    return f"{KEY_PREFIX}{public_id or new_public_id()}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return ALL_SCOPES in self.scopes or scope in self.scopes or f"{scope.split(':')[0]}:*" in self.scopes

    def lacks(self, scopes: list[str]) -> list[str]:
        """Of ``scopes``, those this key may not hand on: ``*`` only from ``*``, ``area:*`` only
        from ``area:*`` (or ``*``), anything else from a key that is allowed it."""
        return sorted(s for s in set(scopes) if not (ALL_SCOPES in self.scopes if s == ALL_SCOPES
                                                      else self.allows(s)))


# What fits the api_key columns: scopes are printable ASCII words, names have no control characters.
Scope = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$", examples=["hubspot-integration"])
    scopes: list[Scope] = Field(min_length=1, max_length=100, examples=[["crm:events"]])


API_KEY_EXAMPLE: dict[str, Any] = {
    "id": "3f1c2b7a-9d4e-4f61-8a0b-5c2d7e9f1a23", "name": "hubspot-integration", "public_id": "9f86d081884c",
    "scopes": ["crm:events"], "created_at": "2026-11-23T09:00:00Z", "revoked_at": None,
    "last_used_at": "2026-11-23T09:30:00Z",
}


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [API_KEY_EXAMPLE]})

    id: str
    name: str
    public_id: str = Field(description="Random; a key made here reads lf_<public_id>_<secret>")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **API_KEY_EXAMPLE, "last_used_at": None,
        "key": "lf_9f86d081884c_Vb3kq0H4n2xW9sT1pLz8rMfQ7yJc5dGe6hA2uKoN4iE"}]})

    key: str = Field(description="The key itself; shown only in this response")


async def sync_bootstrap_key(db: Database, key: str, name: str = "bootstrap") -> None:
    """Make the configured admin key valid with every scope, and revoke every other bootstrap key:
    rotating the setting retires the old key. Idempotent.

    A configured key that was revoked stays revoked: configure a new one."""
    t = api_key_table
    async with db.transaction() as session:
        await session.execute(
            insert(t)
            .values(id=f"{BOOTSTRAP_ID_PREFIX}{new_public_id()}", name=name, public_id=new_public_id(),
                    key_hash=hash_key(key), scopes=[ALL_SCOPES])
            .on_conflict_do_nothing(index_elements=[t.c.key_hash])
        )
        retired = (await session.execute(
            update(t)
            .where(t.c.id.startswith(BOOTSTRAP_ID_PREFIX, autoescape=True), t.c.revoked_at.is_(None),
                   t.c.key_hash != hash_key(key))
            .values(revoked_at=datetime.now().astimezone())
            .returning(t.c.id)
        )).scalars().all()
        current_revoked = (await session.execute(
            select(t.c.revoked_at).where(t.c.key_hash == hash_key(key)))).scalar_one_or_none() is not None
    for key_id in retired:
        log.warning("bootstrap API key %s revoked: the configured admin key is another one", key_id)
    if current_revoked:
        log.error("the configured admin API key was revoked; it stays revoked: configure a new one")


# How stale a key's `last_used_at` may be. Writing it on every request queued every request made
# with one key on that row's lock (a marketing-automation feed posts activities with one key).
LAST_USED_PRECISION = timedelta(minutes=1)


# How long a process trusts a key it verified without asking the database again (every request with a key
# cost a look-up: the activity feed posts with one). A key revoked through this process is forgotten at
# once; one revoked through another replica, or in the database, is refused within this (docs/security.md).
VERIFIED_KEY_SECONDS = 5.0
# The most verified keys a process remembers per database; past it, it starts again empty.
VERIFIED_KEYS_MAX = 1024

_verified: weakref.WeakKeyDictionary[Database, dict[str, tuple[Principal, float]]] = weakref.WeakKeyDictionary()


async def authenticate(db: Database, key: str) -> Principal | None:
    digest = hash_key(key)
    remembered = _verified.setdefault(db, {})
    known = remembered.get(digest)
    if known is not None and known[1] > time.monotonic():
        return known[0]
    principal = await _look_up(db, digest)
    if principal is not None:
        if len(remembered) >= VERIFIED_KEYS_MAX:
            remembered.clear()
        remembered[digest] = (principal, time.monotonic() + VERIFIED_KEY_SECONDS)
    return principal


def forget_verified(db: Database, key_id: str) -> None:
    """Stop trusting key ``key_id`` at once in this process (it was revoked)."""
    remembered = _verified.get(db, {})
    for digest in [digest for digest, (principal, _) in remembered.items() if principal.key_id == key_id]:
        del remembered[digest]


async def _look_up(db: Database, digest: str) -> Principal | None:
    now = datetime.now().astimezone()
    keys = api_key_table.c
    async with db.transaction() as session:
        row = (
            await session.execute(
                select(keys.id, keys.name, keys.scopes, keys.last_used_at)
                .where(keys.key_hash == digest, keys.revoked_at.is_(None))
            )
        ).first()
        if row is None:
            return None
        if row.last_used_at is None or row.last_used_at < now - LAST_USED_PRECISION:
            # SKIP LOCKED: a request finding another one writing this key's time never waits for it.
            unlocked = select(keys.id).where(keys.id == row.id).with_for_update(skip_locked=True).scalar_subquery()
            await session.execute(update(api_key_table).where(keys.id == unlocked).values(last_used_at=now))
    return Principal(row.id, row.name, frozenset(row.scopes))


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


BEARER_SCHEME = "bearer"
API_KEY_SCHEME = "api_key"
SECURITY_SCHEMES: dict[str, Any] = {
    BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "lf_<public id>_<secret>",
                    "description": "An API key, as `Authorization: Bearer <key>`"},
    API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "The same API key, as `X-API-Key: <key>`"},
}


def key_security(scopes: Sequence[str], *, optional: bool = False) -> list[dict[str, list[str]]]:
    """An OpenAPI ``security`` list: a key holding any one of ``scopes``, in either header; with
    ``optional``, no key at all is also accepted (the route decides when it needs one)."""
    return [*([{}] if optional else []),
            *({scheme: [scope]} for scope in scopes for scheme in (BEARER_SCHEME, API_KEY_SCHEME))]


def optional_key_doc(scope: str) -> dict[str, Any]:
    """``openapi_extra`` for a route that asks for a key (via ``authorize``) only for some requests."""
    return {"security": key_security([scope], optional=True), "x-required-scopes": [scope]}


def require_scope(*scopes: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: 401 without a valid key, 403 without one of ``scopes``.

    It also runs before a route reads its body (``leadflow_kit.bodies``), found by ``required_scope``;
    the key is then looked up once per request.
    """

    async def dependency(request: Request) -> Principal:
        return await authorize(request, *scopes)

    dependency.required_scope = scopes  # type: ignore[attr-defined]
    return dependency


async def authorize(request: Request, *scopes: str, why: str = "") -> Principal:
    """The request's key, holding one of ``scopes``: HTTPException 401 without a valid key, 403
    without the scope. ``why`` is added to the 401 for a caller that did not know it needed a key.
    The key is looked up once per request (the body middleware may have asked already)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        principal = await _authenticated(request, why)
        request.state.principal = principal
    if not any(principal.allows(scope) for scope in scopes):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=lacks_scope_detail(scopes))
    return principal


def key_required_detail(why: str = "") -> str:
    return f"API key required{why}: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


def lacks_scope_detail(scopes: Sequence[str]) -> str:
    return f"API key lacks the scope '{scopes[0]}'" if len(scopes) == 1 else \
        f"API key lacks one of the scopes {list(scopes)}"


async def _authenticated(request: Request, why: str = "") -> Principal:
    key = presented_key(request)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=key_required_detail(why),
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await authenticate(request_platform(request).db, key)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="API key is unknown or revoked",
                            headers={"WWW-Authenticate": "Bearer"})
    return principal


FORBIDDEN_DOC: dict[str, Any] = {"description": "The key lacks a scope it would grant (or the key to revoke has)",
                                 "content": {"application/json": {"example": {
                                     "detail": "this API key cannot grant scopes it does not hold: forms:write",
                                     "errors": [{"field": "scopes", "code": "scope_not_held",
                                                 "message": "forms:write"}]}}}}


def refuse_beyond(principal: Principal, scopes: list[str], what: str) -> None:
    lacking = principal.lacks(scopes)
    if lacking:
        names = ", ".join(lacking)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail={
            "detail": f"this API key cannot {what} scopes it does not hold: {names}",
            "errors": [{"field": "scopes", "code": "scope_not_held", "message": name} for name in lacking],
        })


def api_key_router() -> APIRouter:
    router = APIRouter(prefix="/v1/admin/api-keys", tags=["api keys"])

    def public(row: object) -> ApiKeyPublic:
        return ApiKeyPublic.model_validate(row, from_attributes=True)

    @router.post("", status_code=201, response_model=ApiKeyCreated, summary="Create an API key (shown once)",
                 description="A key may grant only scopes it holds itself: `*` only from `*`, `area:*` only "
                 "from `area:*` or `*`.", responses={403: FORBIDDEN_DOC})
    async def create_api_key(
        body: ApiKeyCreate, platform: PlatformDep,
        principal: Annotated[Principal, Depends(require_scope("api-keys:write"))],
    ) -> ApiKeyCreated:
        refuse_beyond(principal, body.scopes, "grant")
        public_id = new_public_id()
        key = generate_key(public_id)
        async with platform.db.transaction() as session:
            row = (
                await session.execute(
                    insert(api_key_table)
                    .values(id=str(uuid.uuid4()), name=body.name, public_id=public_id,
                            key_hash=hash_key(key), scopes=sorted(set(body.scopes)))
                    .returning(*api_key_table.c)
                )
            ).one()
        return ApiKeyCreated(**public(row).model_dump(), key=key)

    @router.get("", response_model=list[ApiKeyPublic], summary="List API keys (never the keys themselves)",
                dependencies=[Depends(require_scope("api-keys:read"))])
    async def list_api_keys(platform: PlatformDep) -> list[ApiKeyPublic]:
        async with platform.db.transaction() as session:
            rows = (await session.execute(select(api_key_table).order_by(api_key_table.c.created_at))).all()
        return [public(r) for r in rows]

    @router.delete("/{key_id}", status_code=204, summary="Revoke an API key (one within the caller's scopes)",
                   responses={403: FORBIDDEN_DOC, 404: {"description": "No such key", "content": {
                       "application/json": {"example": {"detail": "no active API key 'k1'"}}}}})
    async def revoke_api_key(
        key_id: str, platform: PlatformDep, principal: Annotated[Principal, Depends(require_scope("api-keys:write"))],
    ) -> None:
        t = api_key_table
        async with platform.db.transaction() as session:
            scopes = (await session.execute(
                select(t.c.scopes).where(t.c.id == key_id, t.c.revoked_at.is_(None)).with_for_update()
            )).scalar_one_or_none()
            if scopes is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no active API key '{key_id}'")
            refuse_beyond(principal, list(scopes), "revoke a key with")
            await session.execute(
                update(t).where(t.c.id == key_id).values(revoked_at=datetime.now().astimezone()))
        forget_verified(platform.db, key_id)

    return router
