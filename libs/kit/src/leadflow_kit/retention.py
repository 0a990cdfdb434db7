"""Retention: rows past their time are deleted by one sweeper every service runs.

A service lists its ``RetentionRule``s; ``create_service_app`` adds the inbox's rule and runs
``sweep`` every ``retention_sweep_interval_seconds``. Deletes go in batches of
``retention_batch_size`` rows, each its own short transaction, so a first sweep over a large
backlog never holds locks or bloats one transaction; rows another transaction holds are skipped
until the next round. Replicas may sweep side by side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from leadflow_kit.clock import Clock
from leadflow_kit.db import Database, driver_connection
from leadflow_kit.metrics import ServiceMetrics
from leadflow_kit.settings import ServiceSettings
from leadflow_kit.webhooks import WebhookSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionRule:
    """Rows of ``table`` matching ``expired`` (SQL over the row, with ``$1`` the cutoff: now - ``keep``) go."""

    table: str
    expired: str
    keep: timedelta
    # Names the rule in logs and metrics when one table has several.
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.table


def inbox_rule(settings: ServiceSettings) -> RetentionRule:
    """The inbox (``processed_event``) must outlive every copy of an event that can still arrive."""
    return RetentionRule("processed_event", "processed_at < $1", timedelta(days=settings.inbox_retention_days))


def webhook_rules(settings: WebhookSettings) -> list[RetentionRule]:
    """A service that sends webhooks: its attempt log, and deliveries once delivered (their attempts go
    with them). Pending, held and dead deliveries stay: they still have to go out or be replayed."""
    return [
        RetentionRule("webhook_attempt", "attempted_at < $1", timedelta(days=settings.webhook_attempt_retention_days)),
        RetentionRule("webhook_delivery", "status = 'delivered' AND delivered_at < $1",
                      timedelta(days=settings.webhook_delivered_retention_days), name="webhook_delivery_delivered"),
    ]


async def sweep_rule(db: Database, rule: RetentionRule, now: datetime, batch_size: int) -> int:
    """Delete every expired row of one rule, ``batch_size`` rows per transaction; returns how many went."""
    statement = (
        f"WITH doomed AS (SELECT ctid FROM {rule.table} WHERE {rule.expired} LIMIT $2 FOR UPDATE SKIP LOCKED), "
        f"gone AS (DELETE FROM {rule.table} WHERE ctid IN (SELECT ctid FROM doomed) RETURNING 1) "
        "SELECT count(*) FROM gone"
    )
    cutoff = now - rule.keep
    total = 0
    while True:
        async with db.transaction() as session:
            deleted = int(await (await driver_connection(session)).fetchval(statement, cutoff, batch_size))
        total += deleted
        if deleted < batch_size:
            return total


async def sweep(
    db: Database, rules: Sequence[RetentionRule], now: datetime, batch_size: int,
    metrics: ServiceMetrics | None = None,
) -> dict[str, int]:
    """One round over every rule; rows deleted per rule."""
    swept: dict[str, int] = {}
    for rule in rules:
        swept[rule.label] = deleted = await sweep_rule(db, rule, now, batch_size)
        if metrics is not None:
            metrics.retention_deleted.labels(metrics.service, rule.label).inc(deleted)
        if deleted:
            log.info("retention: deleted %d %s rows older than %s", deleted, rule.label, rule.keep)
    return swept


async def run_sweeper(
    settings: ServiceSettings, db: Database, clock: Clock, metrics: ServiceMetrics, rules: Sequence[RetentionRule]
) -> None:
    """Sweep every ``retention_sweep_interval_seconds`` until cancelled; a failed round is retried next time."""
    while True:
        try:
            await sweep(db, rules, clock.now(), settings.retention_batch_size, metrics)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("retention sweep failed; will try again", exc_info=True)
        await asyncio.sleep(settings.retention_sweep_interval_seconds)
