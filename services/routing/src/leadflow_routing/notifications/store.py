"""Every SQL statement of routing's notifications: reps' settings, teams' Slack webhooks, and the
table of pending notifications the sender claims (``FOR UPDATE SKIP LOCKED`` plus a lease)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.db import driver_connection
from leadflow_routing.notifications.messages import Channel, NotificationContent, Recipient
from leadflow_routing.tables import rep, rep_notification, rep_notification_settings, team, team_slack_webhook

# The reps among $1 that have a channel set up: a batch's owners in one statement, and none of the
# reps without settings (most of them) costs anything more.
SELECT_RECIPIENTS = (
    "SELECT r.id, r.name, r.team_id, coalesce(s.email, r.email) AS email, s.slack_user_id, s.channels "
    "FROM rep_notification_settings s JOIN rep r ON r.id = s.rep_id "
    "WHERE s.rep_id = ANY($1::text[]) AND cardinality(s.channels) > 0"
)


def recipient_from_row(row: Any, prefix: str = "") -> Recipient:
    """A rep as notifications reach them, from a row with the rep's ``id``, ``name`` and ``team_id`` and the
    settings' ``email`` (the rep's own when the settings have none), ``slack_user_id`` and ``channels``, each
    of these three named with ``prefix``."""
    return Recipient(rep_id=row["id"], name=row["name"], team_id=row["team_id"], email=row[f"{prefix}email"],
                     slack_user_id=row[f"{prefix}slack_user_id"], channels=list(row[f"{prefix}channels"]))


@dataclass(frozen=True)
class RepNotificationSettings:
    rep_id: str
    email: str | None
    slack_user_id: str | None
    channels: list[Channel]
    updated_at: datetime | None


@dataclass(frozen=True)
class NewNotification:
    id: str
    cause_event_id: str
    channel: Channel
    team_id: str | None
    content: NotificationContent
    created_at: datetime


@dataclass(frozen=True)
class ClaimedNotification:
    id: str
    channel: Channel
    team_id: str | None
    content: NotificationContent
    attempts: int
    # The team's Slack webhook URL, still encrypted; None when the team has none.
    team_slack_ciphertext: str | None


@dataclass(frozen=True)
class NotificationRow:
    id: str
    kind: str
    channel: str
    rep_id: str
    lead_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def _log_columns() -> list[Any]:
    n = rep_notification
    return [n.c.id, n.c.kind, n.c.channel, n.c.rep_id, n.c.lead_id, n.c.status, n.c.attempts, n.c.next_attempt_at,
            n.c.last_error, n.c.created_at, n.c.sent_at]


class NotificationStore:
    # -- settings ----------------------------------------------------------------------------

    async def recipients_of(self, session: AsyncSession, rep_ids: Collection[str]) -> dict[str, Recipient]:
        """The reps among ``rep_ids`` with the channels they are told through; a rep with none is left
        out. Asked once for a batch's new owners, so a plain asyncpg statement (docs/architecture.md,
        "speed")."""
        if not rep_ids:
            return {}
        conn = await driver_connection(session)
        rows = await conn.fetch(SELECT_RECIPIENTS, sorted(rep_ids))
        return {row["id"]: recipient_from_row(row) for row in rows}

    async def rep_settings(self, session: AsyncSession, rep_id: str) -> RepNotificationSettings | None:
        s = rep_notification_settings
        row = (await session.execute(select(s).where(s.c.rep_id == rep_id))).first()
        if row is None:
            return None
        return RepNotificationSettings(row.rep_id, row.email, row.slack_user_id, list(row.channels), row.updated_at)

    async def rep_email(self, session: AsyncSession, rep_id: str) -> tuple[bool, str | None]:
        """Whether the rep exists, and the email address their record has."""
        row = (await session.execute(select(rep.c.email).where(rep.c.id == rep_id))).first()
        return (row is not None, row.email if row is not None else None)

    async def put_rep_settings(self, session: AsyncSession, settings: RepNotificationSettings, now: datetime) -> None:
        s = rep_notification_settings
        values = {"email": settings.email, "slack_user_id": settings.slack_user_id,
                  "channels": list(settings.channels), "updated_at": now}
        await session.execute(insert(s).values(rep_id=settings.rep_id, **values)
                              .on_conflict_do_update(index_elements=[s.c.rep_id], set_=values))

    async def team_exists(self, session: AsyncSession, team_id: str) -> bool:
        return (await session.execute(select(team.c.id).where(team.c.id == team_id))).first() is not None

    async def team_slack_webhook(self, session: AsyncSession, team_id: str) -> tuple[str, datetime] | None:
        t = team_slack_webhook
        row = (await session.execute(select(t.c.url_ciphertext, t.c.updated_at).where(t.c.team_id == team_id))).first()
        return None if row is None else (row.url_ciphertext, row.updated_at)

    async def put_team_slack_webhook(self, session: AsyncSession, team_id: str, ciphertext: str, now: datetime) -> None:
        t = team_slack_webhook
        values = {"url_ciphertext": ciphertext, "updated_at": now}
        await session.execute(insert(t).values(team_id=team_id, **values)
                              .on_conflict_do_update(index_elements=[t.c.team_id], set_=values))

    async def delete_team_slack_webhook(self, session: AsyncSession, team_id: str) -> bool:
        t = team_slack_webhook
        result = await session.execute(delete(t).where(t.c.team_id == team_id).returning(t.c.team_id))
        return result.first() is not None

    async def slack_ciphertexts_for_update(self, session: AsyncSession) -> list[tuple[str, str]]:
        """Every team's encrypted Slack URL, locked until the transaction ends (for key rotation)."""
        t = team_slack_webhook
        rows = (await session.execute(select(t.c.team_id, t.c.url_ciphertext).with_for_update())).all()
        return [(row.team_id, row.url_ciphertext) for row in rows]

    async def set_slack_ciphertext(self, session: AsyncSession, team_id: str, ciphertext: str) -> None:
        t = team_slack_webhook
        await session.execute(update(t).where(t.c.team_id == team_id).values(url_ciphertext=ciphertext))

    # -- the queue ---------------------------------------------------------------------------

    async def enqueue(self, session: AsyncSession, notes: Sequence[NewNotification]) -> None:
        """Queue ``notes`` in the caller's transaction; a cause already queued (a redelivered event) is
        not queued again."""
        if not notes:
            return
        n = rep_notification
        rows = [{"id": note.id, "cause_event_id": note.cause_event_id, "kind": note.content.kind,
                 "channel": note.channel, "rep_id": note.content.rep_id, "team_id": note.team_id,
                 "lead_id": note.content.lead_id, "content": note.content.model_dump(mode="json"),
                 "next_attempt_at": note.created_at, "created_at": note.created_at} for note in notes]
        await session.execute(insert(n).values(rows).on_conflict_do_nothing(
            index_elements=[n.c.cause_event_id, n.c.rep_id, n.c.channel]))

    async def claim_due(self, session: AsyncSession, now: datetime, lease: timedelta,
                        limit: int) -> list[ClaimedNotification]:
        """Pending notifications that are due and not leased, leased until ``now + lease``: another
        sender skips them, and they come back by themselves if this one dies mid-send."""
        n, t = rep_notification, team_slack_webhook
        due = (
            select(n.c.id).where(n.c.status == "pending", n.c.next_attempt_at <= now,
                                 or_(n.c.leased_until.is_(None), n.c.leased_until <= now))
            .order_by(n.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
        )
        leased = (
            update(n).where(n.c.id.in_(due)).values(leased_until=now + lease)
            .returning(n.c.id, n.c.channel, n.c.team_id, n.c.content, n.c.attempts).cte("leased")
        )
        rows = (await session.execute(
            select(leased, t.c.url_ciphertext).select_from(leased.outerjoin(t, t.c.team_id == leased.c.team_id))
        )).all()
        return [ClaimedNotification(row.id, row.channel, row.team_id,
                                    NotificationContent.model_validate(row.content), row.attempts,
                                    row.url_ciphertext) for row in rows]

    async def record_sent(self, session: AsyncSession, notification_id: str, now: datetime) -> None:
        n = rep_notification
        await session.execute(update(n).where(n.c.id == notification_id, n.c.status == "pending").values(
            status="sent", sent_at=now, attempts=n.c.attempts + 1, leased_until=None, last_error=None))

    async def record_failed(self, session: AsyncSession, notification_id: str, *, error: str,
                            retry_at: datetime | None) -> None:
        """A failed attempt: due again at ``retry_at``, or dead (None)."""
        n = rep_notification
        values: dict[str, Any] = {"attempts": n.c.attempts + 1, "leased_until": None, "last_error": error[:1000]}
        if retry_at is None:
            values["status"] = "dead"
        else:
            values["next_attempt_at"] = retry_at
        await session.execute(update(n).where(n.c.id == notification_id, n.c.status == "pending").values(**values))

    async def notifications(self, session: AsyncSession, *, lead_id: str | None, rep_id: str | None,
                            status: str | None, limit: int) -> list[NotificationRow]:
        """The notification log, newest first."""
        n = rep_notification
        conditions = [c for c in (n.c.lead_id == lead_id if lead_id else None,
                                  n.c.rep_id == rep_id if rep_id else None,
                                  n.c.status == status if status else None) if c is not None]
        rows = (await session.execute(
            select(*_log_columns()).where(and_(True, *conditions)).order_by(n.c.created_at.desc(), n.c.id).limit(limit)
        )).all()
        return [NotificationRow(**row._mapping) for row in rows]

    async def retry(self, session: AsyncSession, notification_id: str, now: datetime) -> NotificationRow | None:
        """Make a dead notification due now with a fresh count (a pending one is already on its way, a
        sent one stays sent); None when there is no such notification."""
        n = rep_notification
        await session.execute(update(n).where(n.c.id == notification_id, n.c.status == "dead").values(
            status="pending", attempts=0, next_attempt_at=now, leased_until=None))
        return await self.notification(session, notification_id)

    async def notification(self, session: AsyncSession, notification_id: str) -> NotificationRow | None:
        n = rep_notification
        row = (await session.execute(select(*_log_columns()).where(n.c.id == notification_id))).first()
        return None if row is None else NotificationRow(**row._mapping)

