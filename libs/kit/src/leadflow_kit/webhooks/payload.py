"""What a webhook says (the Standard Webhooks body) and which subscriptions receive an event type."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

ALL_EVENT_TYPES = "*"


def webhook_payload(
    event_type: str, data: Mapping[str, Any], timestamp: datetime, extra: Mapping[str, Any] | None = None
) -> str:
    """The Standard Webhooks body: ``{"type", "timestamp", "data"}`` plus any ``extra`` top-level fields."""
    return json.dumps(
        {**(extra or {}), "type": event_type, "timestamp": timestamp.isoformat(), "data": data},
        separators=(",", ":"),
        default=str,
    )


def subscription_patterns(event_type: str) -> list[str]:
    """What a subscription may name to receive ``event_type``: itself, any parent ``a.b.*``, or ``*``."""
    parts = event_type.split(".")
    return [event_type, *(".".join(parts[:n]) + ".*" for n in range(len(parts) - 1, 0, -1)), ALL_EVENT_TYPES]
