"""The admin API of notifications: a rep's channels (email address, Slack user id), a team's Slack
incoming webhook (write-only: the URL is a credential, stored encrypted), the notification log and
retrying a notification that gave up."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadflow_kit.auth import require_scope
from leadflow_kit.egress import destination_refusal, parse_url
from leadflow_kit.errors import FieldError
from leadflow_routing.admin import invalid
from leadflow_routing.api import not_found
from leadflow_routing.bootstrap import DepsDep
from leadflow_routing.notifications.messages import Channel
from leadflow_routing.notifications.store import NotificationRow, RepNotificationSettings

notifications_router = APIRouter(prefix="/v1/admin", tags=["notifications"])

readable = [Depends(require_scope("routing:read", "routing:write"))]
writable = [Depends(require_scope("routing:write"))]

EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,255}$"
SLACK_USER_PATTERN = r"^[UW][A-Z0-9]{2,30}$"
NotificationStatus = Literal["pending", "sent", "dead"]


class RepNotificationsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"channels": ["slack", "email"], "slack_user_id": "U024BE7LH", "email": "ada@example.com"}]})

    channels: list[Channel] = Field(max_length=2, description="Where the rep is told; [] turns notifications off")
    email: str | None = Field(default=None, max_length=320, pattern=EMAIL_PATTERN,
                              description="Overrides the rep's own email for notifications")
    slack_user_id: str | None = Field(default=None, pattern=SLACK_USER_PATTERN,
                                      description="Mentioned as <@id> in the Slack message")

    @model_validator(mode="after")
    def _distinct(self) -> RepNotificationsUpdate:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("a channel is listed twice")
        return self


class RepNotificationsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"rep_id": "rep-ada", "channels": ["slack", "email"], "slack_user_id": "U024BE7LH",
         "email": "ada@example.com", "updated_at": "2026-12-03T10:00:00Z"}]})

    rep_id: str
    channels: list[Channel]
    email: str | None
    slack_user_id: str | None
    updated_at: datetime | None

    @classmethod
    def of(cls, settings: RepNotificationSettings) -> RepNotificationsPublic:
        return cls(rep_id=settings.rep_id, channels=settings.channels, email=settings.email,
                   slack_user_id=settings.slack_user_id, updated_at=settings.updated_at)


class SlackWebhookSet(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX"}]})

    url: str = Field(min_length=1, max_length=2048, description="The incoming-webhook URL Slack gave the team")


class SlackWebhookPublic(BaseModel):
    """A team's Slack webhook as the API shows it: configured, never the URL itself."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"team_id": "emea-sales", "configured": True, "host": "hooks.slack.com",
         "updated_at": "2026-12-03T10:00:00Z"}]})

    team_id: str
    configured: bool
    host: str | None
    updated_at: datetime | None


class NotificationPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": "ntf_4f9c2d7e", "kind": "assigned", "channel": "slack", "rep_id": "rep-ada", "lead_id": "lead-123",
         "status": "sent", "attempts": 2, "next_attempt_at": "2026-12-03T10:00:05Z",
         "created_at": "2026-12-03T10:00:00Z", "sent_at": "2026-12-03T10:00:06Z"}]})

    id: str
    kind: str
    channel: str
    rep_id: str
    lead_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_error: str | None = Field(default=None, description="Why the last attempt failed, if it did")
    sent_at: datetime | None = None

    @classmethod
    def of(cls, row: NotificationRow) -> NotificationPublic:
        return cls(**row.__dict__)


def _field_error(field: str, code: str, message: str) -> HTTPException:
    return invalid([FieldError(field=field, code=code, message=message)])


@notifications_router.get("/reps/{rep_id}/notifications", response_model=RepNotificationsPublic,
                          dependencies=readable, summary="A rep's notification channels")
async def get_rep_notifications(rep_id: str, deps: DepsDep) -> RepNotificationsPublic:
    async with deps.platform.db.transaction() as session:
        exists, _ = await deps.notifications.rep_email(session, rep_id)
        found = await deps.notifications.rep_settings(session, rep_id)
    if not exists:
        raise not_found(f"no rep '{rep_id}'")
    return RepNotificationsPublic.of(found or RepNotificationSettings(rep_id, None, None, [], None))


@notifications_router.put("/reps/{rep_id}/notifications", response_model=RepNotificationsPublic,
                          dependencies=writable, summary="Set how a rep is told of their leads")
async def put_rep_notifications(rep_id: str, body: RepNotificationsUpdate, deps: DepsDep) -> RepNotificationsPublic:
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        exists, rep_email = await deps.notifications.rep_email(session, rep_id)
        if not exists:
            raise not_found(f"no rep '{rep_id}'")
        if "email" in body.channels and not (body.email or rep_email):
            raise _field_error("email", "required", "the email channel needs an address (here or on the rep)")
        if "slack" in body.channels and not body.slack_user_id:
            raise _field_error("slack_user_id", "required", "the slack channel needs the rep's Slack user id")
        settings = RepNotificationSettings(rep_id, body.email, body.slack_user_id, list(body.channels), now)
        await deps.notifications.put_rep_settings(session, settings, now)
    return RepNotificationsPublic.of(settings)


@notifications_router.get("/teams/{team_id}/slack-webhook", response_model=SlackWebhookPublic,
                          dependencies=readable, summary="Whether a team has its own Slack webhook")
async def get_team_slack_webhook(team_id: str, deps: DepsDep) -> SlackWebhookPublic:
    async with deps.platform.db.transaction() as session:
        if not await deps.notifications.team_exists(session, team_id):
            raise not_found(f"no team '{team_id}'")
        stored = await deps.notifications.team_slack_webhook(session, team_id)
    if stored is None:
        return SlackWebhookPublic(team_id=team_id, configured=False, host=None, updated_at=None)
    try:
        host: str | None = parse_url(deps.settings.secret_box().decrypt(stored[0])).host
    except ValueError:  # under a key no longer configured: set it again (docs/runbook.md)
        host = None
    return SlackWebhookPublic(team_id=team_id, configured=True, host=host, updated_at=stored[1])


@notifications_router.put("/teams/{team_id}/slack-webhook", response_model=SlackWebhookPublic,
                          dependencies=writable, summary="Set a team's Slack incoming webhook (stored encrypted)")
async def put_team_slack_webhook(team_id: str, body: SlackWebhookSet, deps: DepsDep) -> SlackWebhookPublic:
    try:
        url = parse_url(body.url)
    except ValueError as exc:
        raise _field_error("url", "invalid", f"url {exc}") from None
    refusal = await destination_refusal(url, deps.settings.egress_policy())
    if refusal is not None:
        raise _field_error("url", "forbidden_destination", f"url {refusal}")
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        if not await deps.notifications.team_exists(session, team_id):
            raise not_found(f"no team '{team_id}'")
        ciphertext = deps.settings.secret_box().encrypt(body.url)
        await deps.notifications.put_team_slack_webhook(session, team_id, ciphertext, now)
    return SlackWebhookPublic(team_id=team_id, configured=True, host=url.host, updated_at=now)


@notifications_router.delete("/teams/{team_id}/slack-webhook", status_code=204, dependencies=writable,
                             summary="Remove a team's Slack webhook (the global one, if set, takes over)")
async def delete_team_slack_webhook(team_id: str, deps: DepsDep) -> None:
    async with deps.platform.db.transaction() as session:
        if not await deps.notifications.delete_team_slack_webhook(session, team_id):
            raise not_found(f"team '{team_id}' has no Slack webhook")


@notifications_router.get("/notifications", response_model=list[NotificationPublic], dependencies=readable,
                          summary="The notification log, newest first")
async def list_notifications(
    deps: DepsDep, lead_id: str | None = None, rep_id: str | None = None,
    status_: Annotated[NotificationStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[NotificationPublic]:
    async with deps.platform.db.transaction() as session:
        rows = await deps.notifications.notifications(session, lead_id=lead_id, rep_id=rep_id, status=status_,
                                                      limit=limit)
    return [NotificationPublic.of(row) for row in rows]


@notifications_router.post("/notifications/{notification_id}/retry", response_model=NotificationPublic,
                           dependencies=writable, summary="Send a notification that gave up again")
async def retry_notification(notification_id: str, deps: DepsDep) -> NotificationPublic:
    async with deps.platform.db.transaction() as session:
        row = await deps.notifications.retry(session, notification_id, deps.platform.clock.now())
    if row is None:
        raise not_found(f"no notification '{notification_id}'")
    if row.status == "sent":
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"notification '{notification_id}' was already sent")
    return NotificationPublic.of(row)
