"""API keys of the five services: list each service's keys, mint one (the key shown once, only within the scopes
the console's own key holds there) and revoke one. The console's own key is shown but never revoked here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceError, ServiceUnavailable
from leadflow_console.deps import Console, ConsoleDep
from leadflow_console.edits import FieldErrors, is_refusal, refusal_errors, text_list
from leadflow_console.pages import NavItem, Page
from leadflow_console.settings import SERVICES
from leadflow_console.templating import redirect, render
from leadflow_kit.auth import KEY_PREFIX

router = APIRouter(tags=["api keys"])
Admin = Annotated[User, Depends(require_roles("admin"))]
ServiceName = Annotated[str, Path(pattern="^(" + "|".join(SERVICES) + ")$")]
KeyId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
FIELDS = ("service", "name", "scopes")


class KeyBoxes(BaseModel):
    service: str = Field(default="capture", pattern="^(" + "|".join(SERVICES) + ")$")
    name: str = Field(default="", max_length=255)
    scopes: str = Field(default="", max_length=5000)


@dataclass(frozen=True)
class ServiceKeys:
    """One service's keys, or None when it could not be reached; ``own_id`` is the console's key there."""

    service: str
    keys: list[dict[str, Any]] | None
    own_id: str | None

    @property
    def own_scopes(self) -> list[str]:
        return next((k["scopes"] for k in self.keys or [] if k["id"] == self.own_id), [])


def public_id(key: str | None) -> str | None:
    """The public id a listing shows for ``key`` (a key reads ``lf_<public id>_<secret>``)."""
    if not key or not key.startswith(KEY_PREFIX):
        return None
    return key[len(KEY_PREFIX):].split("_", 1)[0] or None


async def _keys(console: Console, service: str) -> ServiceKeys:
    try:
        keys = await console.clients[service].get("/v1/admin/api-keys")
    except ServiceUnavailable:
        return ServiceKeys(service, None, None)
    own_public_id = public_id(console.settings.service_api_key(service))
    own = next((k["id"] for k in keys if own_public_id and k["public_id"] == own_public_id and not k["revoked_at"]),
               None)
    return ServiceKeys(service, sorted(keys, key=lambda k: (k["revoked_at"] is not None, k["name"])), own)


async def _page(request: Request, console: Console, boxes: KeyBoxes, errors: FieldErrors, *,
                status_code: int = 200) -> HTMLResponse:
    services = await asyncio.gather(*(_keys(console, service) for service in SERVICES))
    return await render(request, "api_keys/list.html", {
        "services": services, "boxes": boxes, "errors": errors, "service_names": SERVICES,
    }, status_code=status_code)


@router.get("/api-keys", response_class=HTMLResponse, summary="Every service's API keys")
async def api_keys(request: Request, user: Admin, console: ConsoleDep) -> Response:
    return await _page(request, console, KeyBoxes(), FieldErrors())


@router.post("/api-keys", response_class=HTMLResponse, summary="Mint an API key on a service; the key is shown once",
             responses={201: {"description": "Minted; the key is on this page only"},
                        422: {"description": "Refused; see the page"}})
async def create_api_key(request: Request, user: Admin, console: ConsoleDep,
                         boxes: Annotated[KeyBoxes, Form()]) -> Response:
    body = {"name": boxes.name.strip(), "scopes": text_list(boxes.scopes.replace(" ", ","))}
    try:
        created = await console.clients[boxes.service].post("/v1/admin/api-keys", json=body)
    except ServiceError as exc:
        # 403 here is a scope the console's key may not grant: the user's choice, not a deployment problem.
        if exc.status == 403 and exc.errors:
            lacking = ", ".join(str(e.get("message")) for e in exc.errors)
            errors = FieldErrors({"scopes": f"the console's key on {boxes.service} cannot grant {lacking}"})
        elif is_refusal(exc):
            errors = refusal_errors(exc, FIELDS)
        else:
            raise
        return await _page(request, console, boxes, errors, status_code=422)
    # The key is in this page alone: never in a cookie, a URL or a cache.
    return await render(request, "api_keys/created.html", {"service": boxes.service, "key": created},
                        status_code=201, headers={"Cache-Control": "no-store"})


@router.post("/api-keys/{service}/{key_id}/revoke", response_class=HTMLResponse, summary="Revoke an API key",
             responses={303: {"description": "Revoked, or why not"}})
async def revoke_api_key(request: Request, service: ServiceName, key_id: KeyId, user: Admin,
                         console: ConsoleDep) -> Response:
    if (await _keys(console, service)).own_id == key_id:
        raise HTTPException(409, detail="This is the console's own key on this service; revoking it would cut the "
                                        "console off. Rotate it with `make up` (or the deployment's secret) instead.")
    try:
        await console.clients[service].delete(f"/v1/admin/api-keys/{key_id}")
    except ServiceError as exc:
        if not (exc.status == 404 or (exc.status == 403 and exc.errors)):
            raise
        return redirect(request, "/api-keys", f"{service} kept the key: {exc.detail}", kind="error")
    return redirect(request, "/api-keys", f"Key revoked on {service}: it is refused from now on.")


page = Page(router, (NavItem("API keys", "/api-keys", ()),))
