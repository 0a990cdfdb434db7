"""SLA warnings and breaches to people, through the kit's durable, signed webhook deliveries.

Subscriptions name ``lead.sla.warning`` / ``lead.sla.breach`` (or ``lead.sla.*``, or ``*``). The body
is the Standard Webhooks ``{"type", "timestamp", "data"}`` plus a top-level ``text``, so a Slack or
Teams incoming-webhook URL can be subscribed directly and shows a readable message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadflow_contracts import Event, LeadSla


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


def notification_data(event: Event[LeadSla]) -> dict[str, Any]:
    data = event.data
    # Warnings are for the owner; a breach also concerns the team manager.
    audience = ["owner"] if data.kind == "warning" else ["owner", "manager"]
    return {**data.model_dump(mode="json"), "event_id": event.id, "audience": audience}


@dataclass(frozen=True)
class Notification:
    """An SLA warning or breach as a webhook delivery; ``text`` makes it readable in a Slack or Teams
    incoming webhook."""

    event_type: str
    lead_id: str
    data: dict[str, Any]
    correlation_id: str | None
    lead_captured_at: datetime | None
    text: str


def sla_notification(event: Event[LeadSla], target_seconds: int | None = None) -> Notification:
    """What goes to every active subscription to the event's kind (``lead.sla.*`` included)."""
    return Notification(
        event_type=notification_type(event.data.kind),
        lead_id=event.data.lead_id,
        data=notification_data(event),
        correlation_id=event.correlation_id,
        lead_captured_at=event.lead_captured_at,
        text=message(event.data, target_seconds),
    )
