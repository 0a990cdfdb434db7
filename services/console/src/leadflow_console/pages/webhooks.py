"""Routing's webhook subscriptions: list, create (the signing secret shown once), edit, hold or resume, remove;
each one's delivery log with outcomes and attempts, and replay (one delivery, or all the dead ones)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceUnavailable
from leadflow_console.deps import ConsoleDep, request_console
from leadflow_console.edits import FieldErrors, attempt, optional_text, text_list
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render

router = APIRouter(tags=["webhooks"])
Admin = Annotated[User, Depends(require_roles("admin"))]
SubscriptionId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
WebhookId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
DeliveryStatus = Literal["pending", "held", "delivered", "dead"]

FIELDS = ("url", "description", "event_types", "tiers", "teams", "forms")
# The types routing sends (it refuses a subscription naming another one, and the page shows why).
EVENT_TYPES = ("lead.captured", "lead.mql", "lead.stage_changed", "lead.routed", "lead.updated", "lead.touched",
               "lead.sla.started", "lead.sla.warning", "lead.sla.breach")
ALIASES = {"filters.tiers": "tiers", "filters.teams": "teams", "filters.forms": "forms"}
LOG_SIZE = 50


class SubscriptionBoxes(BaseModel):
    url: str = Field(default="", max_length=2048)
    description: str = Field(default="", max_length=1000)
    event_types: list[str] = Field(default_factory=list, max_length=50)
    # Patterns ("lead.*", "*") and types this console does not list.
    other_event_types: str = Field(default="", max_length=2000)
    tiers: str = Field(default="", max_length=2000)
    teams: str = Field(default="", max_length=5000)
    forms: str = Field(default="", max_length=5000)

    def body(self) -> dict[str, Any]:
        filters = {name: text_list(getattr(self, name)) or None for name in ("tiers", "teams", "forms")}
        return {"url": self.url.strip(), "description": optional_text(self.description),
                "event_types": list(dict.fromkeys([*self.event_types, *text_list(self.other_event_types)])),
                "filters": filters}

    @classmethod
    def of(cls, subscription: dict[str, Any]) -> SubscriptionBoxes:
        filters = subscription.get("filters") or {}
        types = subscription.get("event_types") or []
        return cls(url=subscription["url"], description=subscription.get("description") or "",
                   event_types=[t for t in types if t in EVENT_TYPES],
                   other_event_types=", ".join(t for t in types if t not in EVENT_TYPES),
                   **{name: ", ".join(filters.get(name) or []) for name in ("tiers", "teams", "forms")})


@router.get("/webhooks", response_class=HTMLResponse, summary="Webhook subscriptions")
async def subscriptions(request: Request, user: Admin, console: ConsoleDep) -> Response:
    try:
        found = await console.clients.routing.get("/v1/admin/webhooks/subscriptions")
    except ServiceUnavailable:
        found = None
    return await render(request, "webhooks/list.html", {"subscriptions": found})


@router.get("/webhooks/new", response_class=HTMLResponse, summary="A new webhook subscription")
async def new_subscription(request: Request, user: Admin) -> Response:
    return await _editor(request, SubscriptionBoxes(event_types=["lead.routed"]), None, FieldErrors())


@router.post("/webhooks/new", response_class=HTMLResponse,
             summary="Subscribe a URL; the answer shows the signing secret, once",
             responses={201: {"description": "Created; the secret is on this page only"},
                        422: {"description": "Refused; see the page"}})
async def create_subscription(request: Request, user: Admin, console: ConsoleDep,
                              boxes: Annotated[SubscriptionBoxes, Form()]) -> Response:
    created = await attempt(lambda: console.clients.routing.post("/v1/admin/webhooks/subscriptions",
                                                                 json=boxes.body()), FIELDS, ALIASES)
    if isinstance(created, FieldErrors):
        return await _editor(request, boxes, None, created)
    # The secret is in this page alone: never in a cookie, a URL or a cache.
    return await render(request, "webhooks/created.html", {"subscription": created}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.get("/webhooks/deliveries/{webhook_id}", response_class=HTMLResponse,
            summary="One delivery: its payload and every attempt")
async def delivery(request: Request, webhook_id: WebhookId, user: Admin, console: ConsoleDep) -> Response:
    found = await console.clients.routing.get(f"/v1/admin/webhooks/deliveries/{webhook_id}")
    return await render(request, "webhooks/delivery.html", {"delivery": found})


@router.post("/webhooks/deliveries/{webhook_id}/replay", response_class=HTMLResponse,
             summary="Send a delivery again, with the same webhook id", responses={303: {"description": "Queued"}})
async def replay_delivery(request: Request, webhook_id: WebhookId, user: Admin, console: ConsoleDep) -> Response:
    replayed = await console.clients.routing.post(f"/v1/admin/webhooks/deliveries/{webhook_id}/replay")
    return redirect(request, f"/webhooks/{quote(replayed['subscription_id'])}",
                    f"Delivery {webhook_id} queued to be sent again.")


@router.get("/webhooks/{subscription_id}", response_class=HTMLResponse,
            summary="One subscription: edit it, its delivery log")
async def subscription(request: Request, subscription_id: SubscriptionId, user: Admin, console: ConsoleDep,
                       status: Annotated[DeliveryStatus | None, Query()] = None) -> Response:
    found = await console.clients.routing.get(f"/v1/admin/webhooks/subscriptions/{subscription_id}")
    return await _editor(request, SubscriptionBoxes.of(found), found, FieldErrors(), status=status)


@router.post("/webhooks/{subscription_id}", response_class=HTMLResponse, summary="Change a subscription",
             responses={303: {"description": "Saved"}, 422: {"description": "Refused; see the page"}})
async def update_subscription(request: Request, subscription_id: SubscriptionId, user: Admin, console: ConsoleDep,
                              boxes: Annotated[SubscriptionBoxes, Form()]) -> Response:
    routing = console.clients.routing
    found = await routing.get(f"/v1/admin/webhooks/subscriptions/{subscription_id}")
    saved = await attempt(lambda: routing.patch(f"/v1/admin/webhooks/subscriptions/{subscription_id}",
                                                json=boxes.body()), FIELDS, ALIASES)
    if isinstance(saved, FieldErrors):
        return await _editor(request, boxes, found, saved)
    return redirect(request, f"/webhooks/{subscription_id}", "Subscription saved.")


@router.post("/webhooks/{subscription_id}/active", response_class=HTMLResponse,
             summary="Hold a subscription's deliveries, or resume them (the held ones are sent)",
             responses={303: {"description": "Done"}})
async def set_active(request: Request, subscription_id: SubscriptionId, user: Admin, console: ConsoleDep,
                     active: Annotated[bool, Form()]) -> Response:
    await console.clients.routing.patch(f"/v1/admin/webhooks/subscriptions/{subscription_id}",
                                        json={"active": active})
    message = "Subscription resumed: held deliveries are being sent." if active else (
        "Subscription disabled: its deliveries are held until it is resumed.")
    return redirect(request, f"/webhooks/{subscription_id}", message)


@router.post("/webhooks/{subscription_id}/replay", response_class=HTMLResponse,
             summary="Send every dead delivery of a subscription again", responses={303: {"description": "Queued"}})
async def replay_dead(request: Request, subscription_id: SubscriptionId, user: Admin, console: ConsoleDep) -> Response:
    replayed = await console.clients.routing.post(f"/v1/admin/webhooks/subscriptions/{subscription_id}/replay",
                                                  json={"statuses": ["dead"]})
    return redirect(request, f"/webhooks/{subscription_id}", f"{replayed['replayed']} dead deliveries queued again.")


@router.post("/webhooks/{subscription_id}/delete", response_class=HTMLResponse, summary="Remove a subscription",
             responses={303: {"description": "Removed"}})
async def delete_subscription(request: Request, subscription_id: SubscriptionId, user: Admin,
                              console: ConsoleDep) -> Response:
    await console.clients.routing.delete(f"/v1/admin/webhooks/subscriptions/{subscription_id}")
    return redirect(request, "/webhooks", "Subscription removed.")


async def _editor(request: Request, boxes: SubscriptionBoxes, subscription: dict[str, Any] | None,
                  errors: FieldErrors, *, status: str | None = None) -> HTMLResponse:
    deliveries = None
    if subscription is not None:
        routing = request_console(request).clients.routing
        deliveries = await routing.get("/v1/admin/webhooks/deliveries", {
            "subscription_id": subscription["id"], "status": status, "limit": LOG_SIZE})
    return await render(request, "webhooks/edit.html", {
        "boxes": boxes, "subscription": subscription, "errors": errors, "event_types": EVENT_TYPES,
        "deliveries": deliveries, "status": status,
    }, status_code=422 if errors else 200)


page = Page(router, (NavItem("Webhooks", "/webhooks", ()),))
