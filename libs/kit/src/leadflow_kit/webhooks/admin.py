"""The webhook admin API: subscriptions (the secret shown once, rotation), the delivery log and replay.

Each route parses its input, calls the store in one transaction and shapes the answer.
``webhook_admin_router`` mounts them under the scopes a service chooses.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Collection
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from leadflow_kit.auth import require_scope
from leadflow_kit.egress import destination_refusal, parse_url
from leadflow_kit.errors import FieldError
from leadflow_kit.platform import PlatformDep
from leadflow_kit.webhooks.payload import subscription_patterns
from leadflow_kit.webhooks.policy import DeliveryStatus
from leadflow_kit.webhooks.schemas import (
    AttemptPublic,
    BulkReplay,
    BulkReplayed,
    DeliveryDetail,
    DeliveryPublic,
    SecretRotate,
    SecretRotated,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionFilters,
    SubscriptionPublic,
    SubscriptionUpdate,
)
from leadflow_kit.webhooks.settings import WebhookSettings, webhook_settings
from leadflow_kit.webhooks.signing import new_secret
from leadflow_kit.webhooks.store import (
    DeliveryRow,
    SubscriptionFilter,
    SubscriptionRow,
    WebhookStore,
    webhook_transaction,
)


async def _settings(platform: PlatformDep) -> WebhookSettings:
    return webhook_settings(platform)


SettingsDep = Annotated[WebhookSettings, Depends(_settings)]


def webhook_admin_router(
    *,
    read_scope: str = "webhooks:read",
    write_scope: str = "webhooks:write",
    prefix: str = "/v1/admin/webhooks",
    event_types: Collection[str] | None = None,
) -> APIRouter:
    """Subscriptions (secret shown once, rotation), the delivery log and replay.

    ``event_types``: the types the service sends; a subscription naming anything else (or a pattern
    that matches none of them) is refused with a 422. None accepts any type."""
    router = APIRouter(prefix=prefix, tags=["webhooks"])
    readable = [Depends(require_scope(read_scope))]
    writable = [Depends(require_scope(write_scope)), Depends(_event_types_checker(event_types))]
    router.add_api_route(
        "/subscriptions", create_subscription, methods=["POST"], status_code=201,
        response_model=SubscriptionCreated, dependencies=writable,
        summary="Subscribe a URL to event types; the signing secret is shown only here")
    router.add_api_route("/subscriptions", list_subscriptions, methods=["GET"],
                         response_model=list[SubscriptionPublic], dependencies=readable)
    router.add_api_route("/subscriptions/{subscription_id}", get_subscription, methods=["GET"],
                         response_model=SubscriptionPublic, dependencies=readable)
    router.add_api_route(
        "/subscriptions/{subscription_id}", update_subscription, methods=["PATCH"],
        response_model=SubscriptionPublic, dependencies=writable,
        summary="Change a subscription; `active: false` holds its deliveries, `active: true` (also after "
                "a 410) sends the held ones")
    router.add_api_route("/subscriptions/{subscription_id}", delete_subscription, methods=["DELETE"],
                         status_code=204, dependencies=writable)
    router.add_api_route(
        "/subscriptions/{subscription_id}/rotate-secret", rotate_secret, methods=["POST"],
        response_model=SecretRotated, dependencies=writable,
        summary="New secret; the old one keeps signing alongside it until the overlap ends")
    router.add_api_route("/deliveries", list_deliveries, methods=["GET"], response_model=list[DeliveryPublic],
                         dependencies=readable, summary="The delivery log, newest first")
    router.add_api_route("/deliveries/{webhook_id}", get_delivery, methods=["GET"], response_model=DeliveryDetail,
                         dependencies=readable)
    router.add_api_route(
        "/deliveries/{webhook_id}/replay", replay_delivery, methods=["POST"], status_code=202,
        response_model=DeliveryPublic, dependencies=writable,
        summary="Send a delivery again, with the same webhook-id")
    router.add_api_route(
        "/subscriptions/{subscription_id}/replay", replay_subscription, methods=["POST"],
        response_model=BulkReplayed, status_code=202, dependencies=writable,
        summary="Replay a subscription's dead (or delivered) deliveries")
    return router


def _event_types_checker(known: Collection[str] | None) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing a body whose ``event_types`` names a type the service never sends."""
    async def check(request: Request) -> None:
        if known is None or request.method not in ("POST", "PATCH"):
            return
        try:
            body = await request.json()
        except ValueError:
            return  # the route's own body parsing answers it
        names = body.get("event_types") if isinstance(body, dict) else None
        if not isinstance(names, list):
            return
        unknown = [name for name in names if isinstance(name, str) and not _sent(name, known)]
        if unknown:
            error = FieldError(field="event_types", code="unknown_event_type",
                               message=f"unknown event type(s) {', '.join(sorted(unknown))}; "
                                       f"one of {', '.join(sorted(known))} (or a pattern such as 'lead.*', '*')")
            raise HTTPException(422, detail={"detail": "The request is invalid; see errors.",
                                              "errors": [error.model_dump()]})
    return check


def _sent(name: str, known: Collection[str]) -> bool:
    """Whether a subscription naming ``name`` would receive any of the ``known`` types."""
    return any(name in subscription_patterns(event_type) for event_type in known)


def _filter(filters: SubscriptionFilters | None) -> SubscriptionFilter | None:
    return None if filters is None else SubscriptionFilter(filters.tiers, filters.teams, filters.forms)


async def create_subscription(
    body: SubscriptionCreate, platform: PlatformDep, settings: SettingsDep
) -> SubscriptionCreated:
    await _check_destination(settings, body.url)
    now = platform.clock.now()
    secret = new_secret()
    async with webhook_transaction(platform.db) as store:
        row = await store.create_subscription(
            subscription_id=f"sub_{uuid.uuid4().hex[:20]}", url=body.url, description=body.description,
            event_types=sorted(set(body.event_types)), secret_ciphertext=settings.secret_box().encrypt(secret),
            now=now, filters=_filter(body.filters),
        )
    return SubscriptionCreated(**_subscription_public(row).model_dump(), secret=secret)


async def list_subscriptions(platform: PlatformDep) -> list[SubscriptionPublic]:
    async with webhook_transaction(platform.db) as store:
        rows = await store.subscriptions()
    return [_subscription_public(row) for row in rows]


async def get_subscription(subscription_id: str, platform: PlatformDep) -> SubscriptionPublic:
    async with webhook_transaction(platform.db) as store:
        row = await _existing_subscription(store, subscription_id)
    return _subscription_public(row)


async def update_subscription(
    subscription_id: str, body: SubscriptionUpdate, platform: PlatformDep, settings: SettingsDep
) -> SubscriptionPublic:
    now = platform.clock.now()
    if body.url is not None:
        await _check_destination(settings, body.url)
    event_types = None if body.event_types is None else sorted(set(body.event_types))
    async with webhook_transaction(platform.db) as store:
        current = await _existing_subscription(store, subscription_id)
        await store.update_subscription(subscription_id, now, url=body.url, description=body.description,
                                        event_types=event_types, filters=_filter(body.filters))
        if body.active is True and not current.active:
            await store.enable_subscription(subscription_id, now)
        elif body.active is False and current.active:
            await store.disable_subscription(subscription_id, "disabled by an admin", now)
        row = await _existing_subscription(store, subscription_id)
        await store.wake_dispatchers()
    return _subscription_public(row)


async def delete_subscription(subscription_id: str, platform: PlatformDep) -> None:
    now = platform.clock.now()
    async with webhook_transaction(platform.db) as store:
        await _existing_subscription(store, subscription_id)
        await store.delete_subscription(subscription_id, now)


async def rotate_secret(
    subscription_id: str, platform: PlatformDep, settings: SettingsDep, body: SecretRotate | None = None
) -> SecretRotated:
    now = platform.clock.now()
    overlap = (body.overlap_seconds if body and body.overlap_seconds is not None
               else settings.webhook_secret_overlap_seconds)
    expires = now + timedelta(seconds=overlap)
    secret = new_secret()
    async with webhook_transaction(platform.db) as store:
        current = await _existing_subscription(store, subscription_id)
        await store.rotate_secret(
            subscription_id, secret_ciphertext=settings.secret_box().encrypt(secret),
            previous_secret_ciphertext=current.secret_ciphertext, previous_secret_expires_at=expires, now=now,
        )
    return SecretRotated(subscription_id=subscription_id, secret=secret, previous_secret_expires_at=expires)


async def list_deliveries(
    platform: PlatformDep,
    subscription_id: str | None = None,
    lead_id: str | None = None,
    delivery_status: DeliveryStatus | None = Query(default=None, alias="status"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[DeliveryPublic]:
    async with webhook_transaction(platform.db) as store:
        rows = await store.deliveries(subscription_id=subscription_id, lead_id=lead_id, status=delivery_status,
                                      limit=limit)
    return [_delivery_public(row) for row in rows]


async def get_delivery(webhook_id: str, platform: PlatformDep) -> DeliveryDetail:
    async with webhook_transaction(platform.db) as store:
        row = await store.delivery(webhook_id)
        if row is None:
            raise _no_delivery(webhook_id)
        attempts = await store.attempts(row.id)
    return DeliveryDetail(
        **_delivery_public(row).model_dump(),
        payload=json.loads(row.payload),
        attempt_log=[AttemptPublic.model_validate(a, from_attributes=True) for a in attempts],
    )


async def replay_delivery(webhook_id: str, platform: PlatformDep) -> DeliveryPublic:
    async with webhook_transaction(platform.db) as store:
        row = await store.replay_delivery(webhook_id, platform.clock.now())
        if row is None:
            raise _no_delivery(webhook_id)
        await store.wake_dispatchers()
    return _delivery_public(row)


async def replay_subscription(
    subscription_id: str, platform: PlatformDep, body: BulkReplay | None = None
) -> BulkReplayed:
    body = body or BulkReplay()
    now = platform.clock.now()
    async with webhook_transaction(platform.db) as store:
        await _existing_subscription(store, subscription_id)
        count = await store.replay_subscription(subscription_id, now, statuses=body.statuses, since=body.since,
                                                lead_id=body.lead_id)
        await store.wake_dispatchers()
    return BulkReplayed(replayed=count)


async def _check_destination(settings: WebhookSettings, url: str) -> None:
    refusal = await destination_refusal(parse_url(url), settings.egress_policy())
    if refusal is not None:
        error = FieldError(field="url", code="forbidden_destination", message=f"url {refusal}")
        raise HTTPException(422, detail={"detail": "The request is invalid; see errors.",
                                          "errors": [error.model_dump()]})


async def _existing_subscription(store: WebhookStore, subscription_id: str) -> SubscriptionRow:
    row = await store.subscription(subscription_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook subscription '{subscription_id}'")
    return row


def _no_delivery(webhook_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook delivery '{webhook_id}'")


def _subscription_public(row: SubscriptionRow) -> SubscriptionPublic:
    public = SubscriptionPublic.model_validate(row, from_attributes=True)
    public.filters = SubscriptionFilters(tiers=row.filter_tiers, teams=row.filter_teams, forms=row.filter_forms)
    return public


def _delivery_public(row: DeliveryRow) -> DeliveryPublic:
    public = DeliveryPublic.model_validate(row, from_attributes=True)
    if public.status != "pending":
        public.next_attempt_at = None
    return public
