"""SLA warnings and breaches to people, through the kit's durable, signed webhook deliveries.

Subscriptions name ``lead.sla.warning`` / ``lead.sla.breach`` (or ``lead.sla.*``, or ``*``). The body
is the Standard Webhooks ``{"type", "timestamp", "data"}`` plus a top-level ``text``, so a Slack or
Teams incoming-webhook URL can be subscribed directly and shows a readable message.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import any_, func, insert, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, LeadSla
from leadflow_kit.webhooks import ALL_EVENT_TYPES, WEBHOOK_CHANNEL, delivery_table, new_webhook_id, subscription_table

SLA_WILDCARD = "lead.sla.*"


def notification_type(kind: str) -> str:
    return f"lead.sla.{kind}"


def _duration(seconds: float) -> str:
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} s"


def message(data: LeadSla, target_seconds: int | None = None) -> str:
    owner = data.owner_rep_id or "the queue"
    team = f" (team {data.team_id})" if data.team_id else ""
    due = data.due_at.strftime("%Y-%m-%d %H:%M UTC")
    target = f" within {_duration(target_seconds)}" if target_seconds else ""
    if data.kind == "warning":
        return f"SLA warning: {data.tier} lead {data.lead_id} owned by {owner}{team} is due for first touch by {due}."
    tail = " Escalating to the team manager." if data.escalate else " Routing will re-assign it."
    return (f"SLA breach: {data.tier} lead {data.lead_id} owned by {owner}{team} was not touched{target} "
            f"(due {due}).{tail}")


def payload(event: Event[LeadSla], now: datetime, target_seconds: int | None = None) -> dict[str, Any]:
    data = event.data
    # Warnings are for the owner; a breach also concerns the team manager.
    audience = ["owner"] if data.kind == "warning" else ["owner", "manager"]
    return {
        "type": notification_type(data.kind),
        "timestamp": now.isoformat(),
        "data": {**data.model_dump(mode="json"), "event_id": event.id, "audience": audience},
        "text": message(data, target_seconds),
    }


async def enqueue_sla_notification(
    session: AsyncSession, event: Event[LeadSla], now: datetime, target_seconds: int | None = None
) -> list[str]:
    """Queue the notification for every active subscription to it, in the caller's transaction."""
    event_type = notification_type(event.data.kind)
    s = subscription_table
    subscriptions = (
        await session.execute(
            select(s.c.id).where(
                s.c.active.is_(True),
                s.c.deleted_at.is_(None),
                or_(*(literal(name) == any_(s.c.event_types) for name in (event_type, SLA_WILDCARD, ALL_EVENT_TYPES))),
            )
        )
    ).scalars().all()
    if not subscriptions:
        return []
    body = json.dumps(payload(event, now, target_seconds), separators=(",", ":"))
    rows = [
        {
            "webhook_id": new_webhook_id(),
            "subscription_id": sub_id,
            "event_type": event_type,
            "lead_id": event.data.lead_id,
            "payload": body,
            "correlation_id": event.correlation_id,
            "lead_captured_at": event.lead_captured_at,
            "next_attempt_at": now,
            "created_at": now,
        }
        for sub_id in subscriptions
    ]
    await session.execute(insert(delivery_table), rows)
    # Wakes the dispatchers (LISTEN) as soon as this transaction commits.
    await session.execute(select(func.pg_notify(WEBHOOK_CHANNEL, "")))
    return [r["webhook_id"] for r in rows]
