"""The retry policy, pure: what one attempt's outcome means for its delivery (delivered, retried when,
held, or dead)."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

DeliveryStatus = Literal["pending", "held", "delivered", "dead"]
AttemptLabel = Literal["failed", "held", "delivered", "dead"]

THROTTLE_STATUSES = frozenset({429, 502, 503, 504})


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None
    error: str | None
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


@dataclass(frozen=True)
class NextStep:
    status: DeliveryStatus
    next_attempt_at: datetime | None
    disable_subscription: bool = False

    @property
    def label(self) -> AttemptLabel:
        """The attempt's outcome as the attempt log and the metrics name it: a retry is ``failed``."""
        return "failed" if self.status == "pending" else self.status


def next_step(
    outcome: AttemptOutcome,
    attempts: int,
    now: datetime,
    schedule: Sequence[float],
    *,
    jitter_ratio: float = 0.2,
    max_retry_after: float = 86400.0,
    rng: random.Random | None = None,
) -> NextStep:
    """What happens after attempt number ``attempts`` (1-based) ended with ``outcome``."""
    if outcome.delivered:
        return NextStep("delivered", None)
    if outcome.gone:
        # The receiver is gone for now: the subscription is disabled and its deliveries wait, held.
        return NextStep("held", None, disable_subscription=True)
    if attempts > len(schedule):
        return NextStep("dead", None)
    if outcome.retry_after is not None and outcome.status_code in THROTTLE_STATUSES:
        # The receiver said when to come back; that beats our own schedule.
        delay = min(outcome.retry_after, max_retry_after)
    else:
        base = schedule[attempts - 1]
        delay = base * (rng or random).uniform(1 - jitter_ratio, 1 + jitter_ratio)
    return NextStep("pending", now + timedelta(seconds=delay))
