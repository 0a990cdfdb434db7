"""Every SQL statement of the webhook machinery, behind named methods that take and return typed values.

A ``WebhookStore`` works inside one transaction: the caller's session (``enqueue_webhook``, in the
transaction of the business change), or one of its own (``webhook_transaction(db)``). The hot paths
(enqueue, claim, record) are plain SQL on the asyncpg connection; the admin queries are SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol, TypeVar

import asyncpg
from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.db import Database, after_commit, asyncpg_dsn, driver_connection
from leadflow_kit.webhooks.payload import subscription_patterns, webhook_payload
from leadflow_kit.webhooks.policy import AttemptOutcome, DeliveryStatus, NextStep
from leadflow_kit.webhooks.tables import attempt_table, delivery_table, subscription_table

# NOTIFY'd when a delivery becomes due now (queued, replayed, released): every dispatcher LISTENs.
WEBHOOK_CHANNEL = "leadflow_webhook"

R = TypeVar("R")


@dataclass(frozen=True)
class SubscriptionRow:
    id: str
    url: str
    description: str | None
    event_types: list[str]
    secret_ciphertext: str
    previous_secret_ciphertext: str | None
    previous_secret_expires_at: datetime | None
    active: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    deleted_at: datetime | None
    created_at: datetime
    updated_at: datetime
    filter_tiers: list[str] | None = None
    filter_teams: list[str] | None = None
    filter_forms: list[str] | None = None


@dataclass(frozen=True)
class SubscriptionFilter:
    """A subscription's filters (None: that property does not filter)."""

    tiers: Sequence[str] | None = None
    teams: Sequence[str] | None = None
    forms: Sequence[str] | None = None

    def columns(self) -> dict[str, list[str] | None]:
        return {f"filter_{name}": None if values is None else list(values)
                for name, values in (("tiers", self.tiers), ("teams", self.teams), ("forms", self.forms))}


@dataclass(frozen=True)
class DeliveryFacts:
    """What subscription filters test of a delivery: its lead's tier, team and form (None: unknown,
    which passes no filter on that property)."""

    tier: str | None = None
    team: str | None = None
    form: str | None = None


@dataclass(frozen=True)
class WebhookToQueue:
    """One webhook for ``enqueue_webhooks``: what ``enqueue_webhook`` takes as arguments."""

    event_type: str
    lead_id: str
    data: Mapping[str, Any]
    now: datetime
    correlation_id: str | None = None
    lead_captured_at: datetime | None = None
    facts: DeliveryFacts | None = None
    extra: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    webhook_id: str
    subscription_id: str
    event_type: str
    lead_id: str
    payload: str
    correlation_id: str | None
    lead_captured_at: datetime | None
    status: str
    attempts: int
    replays: int
    next_attempt_at: datetime
    leased_until: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AttemptRow:
    id: int
    delivery_id: int
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    outcome: str
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class DueDelivery:
    """A due delivery as the claim finds it, with its subscription's URL and (encrypted) secrets."""

    id: int
    webhook_id: str
    subscription_id: str
    event_type: str
    lead_id: str
    payload: str
    correlation_id: str | None
    lead_captured_at: datetime | None
    attempts: int
    url: str
    secret_ciphertext: str
    previous_secret_ciphertext: str | None
    previous_secret_expires_at: datetime | None


@dataclass(frozen=True)
class FinishedAttempt:
    """One attempt's outcome for ``record_attempts``: the delivery, how many attempts it had before this
    one (the compare-and-set), and what comes next."""

    delivery_id: int
    attempts_before: int
    outcome: AttemptOutcome
    step: NextStep
    at: datetime
    duration_seconds: float


@dataclass(frozen=True)
class RecordedAttempts:
    """What ``record_attempts`` wrote: the deliveries recorded, and whether a row of their subscriptions
    is now due and not leased (a claim would find it)."""

    delivery_ids: set[int]
    claimable: bool


@dataclass(frozen=True)
class DispatcherRoom:
    """How many more sends a running dispatcher takes on now: ``free`` in all, and per subscription its
    ``share`` less its sends ``in_flight``; what it is handed is leased to it until ``lease_until``."""

    free: int
    share: int
    in_flight: Mapping[str, int]
    lease_until: datetime


@dataclass(frozen=True)
class QueuedForHandOff:
    """What ``enqueue_handed`` queued: the deliveries leased to the dispatcher, in queue order, and
    whether others were queued pending, for a claim."""

    handed: list[DueDelivery]
    claimable: bool


@dataclass(frozen=True)
class StoredSecrets:
    subscription_id: str
    secret_ciphertext: str
    previous_secret_ciphertext: str | None


class _Columns(Protocol):
    """A row by column name: SQLAlchemy's ``RowMapping``, asyncpg's ``Record``."""

    def __getitem__(self, name: str, /) -> Any: ...


def _typed(kind: type[R], row: _Columns) -> R:
    return kind(**{field.name: row[field.name] for field in fields(kind)})  # type: ignore[arg-type]


# A new delivery's webhook id, in new_webhook_id's form, for every statement that queues deliveries.
_NEW_WEBHOOK_ID = "'msg_' || replace(gen_random_uuid()::text, '-', '')"

# A lead's earlier open delivery is looked up row by row, by the per-lead index (a probe of a page or two):
# OFFSET 0 keeps PostgreSQL from turning the NOT EXISTS into an anti-join, which it plans from its statistics.
# Taken while the table held few pending rows (before autovacuum's next look at a growing backlog), those made
# it read the subscription's whole backlog once per candidate: 614 ms for one claim over 8,421 pending rows in
# make bench at 400 leads/s (docs/performance.md, session 23).
_PROBE_EACH = "OFFSET 0"

# One round trip: routing's transactions serialize, so each statement per lead is a wait for every
# lead behind it. The ids have new_webhook_id's form; the notify is folded per transaction.
_ENQUEUE = (
    "WITH subscriber AS (SELECT id, active FROM webhook_subscription WHERE deleted_at IS NULL "
    "AND event_types && $1::varchar[] AND (filter_tiers IS NULL OR $9::varchar = ANY(filter_tiers)) "
    "AND (filter_teams IS NULL OR $10::varchar = ANY(filter_teams)) "
    "AND (filter_forms IS NULL OR $11::varchar = ANY(filter_forms))), "
    "queued AS (INSERT INTO webhook_delivery (webhook_id, subscription_id, event_type, lead_id, payload, "
    "correlation_id, lead_captured_at, next_attempt_at, created_at, status) "
    "SELECT " + _NEW_WEBHOOK_ID + ", id, $2, $3, $4, $5, $6, $7, $7, "
    "CASE WHEN active THEN 'pending' ELSE 'held' END FROM subscriber "
    "ORDER BY id RETURNING webhook_id, subscription_id) "
    "SELECT webhook_id, pg_notify($8, '') FROM queued ORDER BY subscription_id"
)

# The items of ``_ENQUEUE_MANY`` and ``_ENQUEUE_HANDED`` ($1-$10, one array a column, ``n`` their order), the
# subscriptions each item matches (its event type's patterns, space-separated, and the filters): one text
# for both statements, so they cannot drift apart.
_ITEMS = (
    "WITH item AS (SELECT * FROM unnest($1::text[], $2::varchar[], $3::text[], $4::text[], $5::text[], "
    "$6::timestamptz[], $7::timestamptz[], $8::varchar[], $9::varchar[], $10::varchar[]) WITH ORDINALITY "
    "AS i(patterns, event_type, lead_id, payload, correlation_id, lead_captured_at, at, tier, team, form, n)), "
)
_MATCHING = (
    "FROM item i JOIN webhook_subscription s ON s.deleted_at IS NULL "
    "AND s.event_types && string_to_array(i.patterns, ' ')::varchar[] "
    "AND (s.filter_tiers IS NULL OR i.tier = ANY(s.filter_tiers)) "
    "AND (s.filter_teams IS NULL OR i.team = ANY(s.filter_teams)) "
    "AND (s.filter_forms IS NULL OR i.form = ANY(s.filter_forms))"
)

# ``_ENQUEUE`` for many webhooks at once, in one statement: each item's deliveries in the items' order
# (then by subscription), so a lead's webhooks keep the order they were queued in. An item's patterns
# come space-separated ($1; an event type has no space).
_ENQUEUE_MANY = (
    _ITEMS +
    "queued AS (INSERT INTO webhook_delivery (webhook_id, subscription_id, event_type, lead_id, payload, "
    "correlation_id, lead_captured_at, next_attempt_at, created_at, status) "
    "SELECT " + _NEW_WEBHOOK_ID + ", s.id, i.event_type, i.lead_id, i.payload, "
    "i.correlation_id, i.lead_captured_at, i.at, i.at, CASE WHEN s.active THEN 'pending' ELSE 'held' END "
    + _MATCHING + " "
    "ORDER BY i.n, s.id RETURNING 1) "
    "SELECT pg_notify($11, '') FROM (SELECT FROM queued LIMIT 1) AS any_queued"
)

# ``_ENQUEUE_MANY`` for a running dispatcher of this process, which sends what it is handed as soon as the
# transaction commits: no NOTIFY and no claim. A delivery is handed over (leased to this process in the
# insert, as the claim would lease it) when its subscription is active, it is the first of its lead to that
# subscription in the batch with no open one before it (per-lead order), and the dispatcher has room for
# it: within the subscription's share less its sends in flight ($12 less $13/$14) and within $15 in all.
# The others are queued as ``_ENQUEUE_MANY`` queues them, for a claim. Returns every row queued, with its
# subscription's URL and secrets.
_ENQUEUE_HANDED = (
    _ITEMS +
    "matched AS (SELECT i.*, s.id AS subscription_id, s.active, "
    "row_number() OVER (PARTITION BY s.id, i.lead_id ORDER BY i.n) AS nth_of_lead "
    + _MATCHING + "), "
    "free_to_go AS (SELECT m.*, m.active AND m.nth_of_lead = 1 "
    "AND NOT EXISTS (SELECT 1 FROM webhook_delivery e WHERE e.subscription_id = m.subscription_id "
    "AND e.lead_id = m.lead_id AND e.status IN ('pending', 'held') " + _PROBE_EACH + ") AS free FROM matched m), "
    "within_share AS (SELECT g.*, g.free AND count(*) FILTER (WHERE g.free) OVER (PARTITION BY g.subscription_id "
    "ORDER BY g.n ROWS UNBOUNDED PRECEDING) <= $12 - coalesce(f.in_flight, 0) AS direct "
    "FROM free_to_go g LEFT JOIN unnest($13::varchar[], $14::int[]) AS f(subscription_id, in_flight) "
    "ON f.subscription_id = g.subscription_id), "
    "ranked AS (SELECT w.*, w.direct AND count(*) FILTER (WHERE w.direct) OVER (ORDER BY w.n, w.subscription_id "
    "ROWS UNBOUNDED PRECEDING) <= $15 AS handed FROM within_share w), "
    "queued AS (INSERT INTO webhook_delivery (webhook_id, subscription_id, event_type, lead_id, payload, "
    "correlation_id, lead_captured_at, next_attempt_at, leased_until, created_at, status) "
    "SELECT " + _NEW_WEBHOOK_ID + ", subscription_id, event_type, lead_id, payload, "
    "correlation_id, lead_captured_at, CASE WHEN handed THEN $11 ELSE at END, "
    "CASE WHEN handed THEN $11::timestamptz END, at, CASE WHEN active THEN 'pending' ELSE 'held' END "
    "FROM ranked ORDER BY n, subscription_id "
    "RETURNING id, webhook_id, subscription_id, event_type, lead_id, payload, correlation_id, lead_captured_at, "
    "attempts, status, leased_until IS NOT NULL AS handed) "
    "SELECT q.*, s.url, s.secret_ciphertext, s.previous_secret_ciphertext, s.previous_secret_expires_at "
    "FROM queued q JOIN webhook_subscription s ON s.id = q.subscription_id"
)

# Each active subscription's due rows in turn (at most what is left of its share of sends in flight,
# so one receiver's backlog cannot crowd out the others), skipping a row while an earlier one of the
# same lead to the same subscription is still open (per-lead order); the rows taken are leased in the
# same statement (rows locked but left out by the limit stay due, unlocked at commit).
_CLAIM = (
    "WITH claimed AS (SELECT d.id, d.next_attempt_at AS due_at FROM webhook_subscription s"
    " LEFT JOIN unnest($4::varchar[], $5::int[]) AS f(subscription_id, in_flight) ON f.subscription_id = s.id"
    " CROSS JOIN LATERAL ("
    " SELECT d.id, d.next_attempt_at FROM webhook_delivery d WHERE d.subscription_id = s.id AND d.status = 'pending'"
    " AND d.next_attempt_at <= $1 AND d.id <> ALL($6::bigint[]) AND NOT EXISTS (SELECT 1 FROM webhook_delivery e"
    " WHERE e.subscription_id = d.subscription_id AND e.lead_id = d.lead_id AND e.id < d.id"
    " AND e.status IN ('pending', 'held') " + _PROBE_EACH + ")"
    " ORDER BY d.next_attempt_at, d.id LIMIT greatest($3 - coalesce(f.in_flight, 0), 0) FOR UPDATE SKIP LOCKED) d"
    " WHERE s.active AND s.deleted_at IS NULL"
    " ORDER BY d.next_attempt_at, d.id LIMIT $2)"
    " UPDATE webhook_delivery d SET next_attempt_at = $7, leased_until = $7"
    " FROM claimed c, webhook_subscription s WHERE d.id = c.id AND s.id = d.subscription_id"
    " RETURNING d.id, d.webhook_id, d.subscription_id, d.event_type, d.lead_id, d.payload, d.correlation_id,"
    " d.lead_captured_at, d.attempts, s.url, s.secret_ciphertext, s.previous_secret_ciphertext,"
    " s.previous_secret_expires_at, c.due_at"
)

# One statement records a round's attempts: each delivery's new state (held instead of pending when
# its subscription was disabled meanwhile), its attempt row only if the state was still ours (a
# replay or another dispatcher may have recorded it; theirs wins: the compare-and-set on attempts),
# and where one succeeded, its subscription's rows waiting out a backoff made due at once: the receiver is
# back. Returns the deliveries really recorded, each with whether a row of
# the recorded subscriptions is due (made due by this success, left by a claim for the subscription's share,
# behind a lead's earlier delivery, or its lease run out): a claim would find it. A leased row is not due
# (its next_attempt_at is its lease's end); the rows recorded here are still leased in the statement's
# snapshot, so they are not counted.
#
# Whatever the statistics say, it reads only the rows it writes and the rows that wait for a later time.
# A join's target is planned by cost alone, and ``status = 'pending'`` on it lets a scan of a whole partial
# index of open rows compete: planned while the statistics counted few open rows, that scan read the whole
# backlog for every row recorded (auto_explain in a quick run at 400 leads/s: 207,456 rows compared to record
# 32, 90 ms a statement, the routing database's costliest). So the state compared comes from ``finished`` (a
# materialized CTE: a join clause, which proves no partial index), and the rows to wake are probed per
# subscription in a LATERAL subquery, by ix_webhook_delivery_backed_off, and locked there (the UPDATE then
# needs no restriction to stay exact).
# The probe starts past the last send's end: rows due before it are due anyway, and in a backlog those are
# the many queued while the sends ran, which an earlier version rewrote at every record. A row waits out a
# backoff only after a failed attempt (``attempts > 0``; a replay starts again at 0, due at once).
_RECORD = (
    "WITH finished AS MATERIALIZED (SELECT *, 'pending'::varchar AS status_before FROM unnest($1::bigint[],"
    " $2::int[], $3::varchar[], $4::timestamptz[], $5::timestamptz[], $6::int[], $7::text[], $8::float8[],"
    " $9::varchar[], $10::timestamptz[]) WITH ORDINALITY"
    " AS f(id, attempts_before, status, next_attempt_at, at, status_code, error, duration_ms, outcome, retry_at, n)),"
    " updated AS ("
    " UPDATE webhook_delivery d SET status = CASE WHEN f.status = 'pending' AND NOT EXISTS (SELECT 1 FROM"
    " webhook_subscription s WHERE s.id = d.subscription_id AND s.active AND s.deleted_at IS NULL) THEN 'held'"
    " ELSE f.status END, attempts = f.attempts_before + 1, next_attempt_at = f.next_attempt_at,"
    " leased_until = NULL, last_attempt_at = f.at, last_status_code = f.status_code, last_error = f.error,"
    " delivered_at = CASE WHEN f.status = 'delivered' THEN f.at END"
    " FROM finished f WHERE d.id = f.id AND d.status = f.status_before AND d.attempts = f.attempts_before"
    " RETURNING d.id, d.subscription_id, d.status, f.attempts_before, f.at, f.status_code, f.error, f.duration_ms,"
    " f.outcome, f.retry_at, f.n),"
    " woken AS ("
    " UPDATE webhook_delivery w SET next_attempt_at = b.at FROM (SELECT backed_off.id, u.at FROM"
    " (SELECT subscription_id, min(at) AS at FROM updated WHERE status = 'delivered' GROUP BY subscription_id) u"
    " CROSS JOIN LATERAL (SELECT o.id FROM webhook_delivery o WHERE o.subscription_id = u.subscription_id"
    " AND o.status = 'pending' AND o.next_attempt_at > (SELECT max(at) FROM finished) AND o.attempts > 0"
    " AND o.leased_until IS NULL FOR UPDATE) backed_off) b WHERE w.id = b.id RETURNING 1),"
    " attempted AS ("
    " INSERT INTO webhook_attempt (delivery_id, attempt, attempted_at, status_code, error, duration_ms,"
    " outcome, next_attempt_at)"
    " SELECT id, attempts_before + 1, at, status_code, error, duration_ms, outcome, retry_at FROM updated"
    " ORDER BY n RETURNING delivery_id)"
    " SELECT delivery_id, EXISTS (SELECT FROM woken) OR EXISTS (SELECT FROM webhook_delivery w"
    " WHERE w.subscription_id IN (SELECT subscription_id FROM updated) AND w.status = 'pending'"
    " AND w.next_attempt_at <= (SELECT max(at) FROM finished)) AS claimable FROM attempted"
)

# Rows of disabled subscriptions are held, not pending; each subscription's next row comes from its
# own index.
_NEXT_DUE = (
    "SELECT min(x.next_attempt_at) FROM webhook_subscription s CROSS JOIN LATERAL ("
    " SELECT d.next_attempt_at FROM webhook_delivery d WHERE d.subscription_id = s.id"
    " AND d.status = 'pending' ORDER BY d.next_attempt_at LIMIT 1) x"
    " WHERE s.active AND s.deleted_at IS NULL"
)

# A stopping dispatcher gives back the rows leased to it that it did not send (or whose send it cut
# off): due at once, for any dispatcher. Only while still as leased (attempts unchanged: a dispatcher that
# claimed one after the lease ran out, and recorded it, wins); a row disabled meanwhile goes back held.
# The rows are reached by key whatever the statistics say, as in ``_RECORD``: with ``status = 'pending'``
# written on the target, a plan made while few rows were open read the whole backlog of open rows through
# their partial index at every give-back (about 7,000 rows thrown away to give back 33, in
# test_a_give_back_over_a_backlog_reaches_its_rows_by_key_whatever_the_statistics_say). So nothing restricts
# the target alone: the state and "still leased" (``leased_until >= '-infinity'``, false for NULL) are
# compared with a materialized CTE's columns, join clauses that prove no partial index and leave the
# planner no reason to read the target before the keys.
_RELEASE = (
    "WITH given AS MATERIALIZED (SELECT *, 'pending'::varchar AS status_before,"
    " '-infinity'::timestamptz AS leased_since FROM unnest($1::bigint[], $2::int[]) AS r(id, attempts))"
    " UPDATE webhook_delivery d SET next_attempt_at = $3, leased_until = NULL,"
    " status = CASE WHEN s.active AND s.deleted_at IS NULL THEN 'pending' ELSE 'held' END"
    " FROM given r, webhook_subscription s"
    " WHERE d.id = r.id AND d.attempts = r.attempts AND d.status = r.status_before"
    " AND d.leased_until >= r.leased_since AND s.id = d.subscription_id"
)

# Deliveries in flight are held as they end (the record's CASE), not here.
_DISABLE = (
    "WITH disabled AS (UPDATE webhook_subscription SET active = false, disabled_reason = $2, disabled_at = $3,"
    " updated_at = $3 WHERE id = $1 RETURNING id)"
    " UPDATE webhook_delivery SET status = 'held' WHERE subscription_id IN (SELECT id FROM disabled)"
    " AND status = 'pending' AND (leased_until IS NULL OR leased_until <= $3)"
)

_ENABLE = (
    "WITH enabled AS (UPDATE webhook_subscription SET active = true, disabled_reason = NULL, disabled_at = NULL,"
    " updated_at = $2 WHERE id = $1 RETURNING id),"
    " released AS (UPDATE webhook_delivery SET status = 'pending', next_attempt_at = $2, leased_until = NULL"
    " WHERE subscription_id IN (SELECT id FROM enabled) AND status = 'held' RETURNING id)"
    " SELECT count(*) FROM released"
)


class WebhookStore:
    """The webhook tables, read and written inside ``session``'s transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _conn(self) -> asyncpg.Connection:
        return await driver_connection(self.session)

    # -- sending --------------------------------------------------------------------------------

    async def enqueue(
        self,
        *,
        event_type: str,
        lead_id: str,
        payload: str,
        now: datetime,
        correlation_id: str | None,
        lead_captured_at: datetime | None,
        facts: DeliveryFacts | None = None,
    ) -> list[str]:
        """Queue ``payload`` for every subscription to ``event_type`` whose filters ``facts`` pass (held
        for a disabled one); the new webhook ids, one per subscription. Dispatchers are woken at commit."""
        facts = facts or DeliveryFacts()
        rows = await (await self._conn()).fetch(
            _ENQUEUE, subscription_patterns(event_type), event_type, lead_id, payload, correlation_id,
            lead_captured_at, now, WEBHOOK_CHANNEL, facts.tier, facts.team, facts.form,
        )
        return [row["webhook_id"] for row in rows]

    async def enqueue_many(self, webhooks: Sequence[WebhookToQueue]) -> None:
        """``enqueue`` for each of ``webhooks``, in one statement (a consumer's batch); their deliveries
        are queued in the order given."""
        if not webhooks:
            return
        facts = [w.facts or DeliveryFacts() for w in webhooks]
        await (await self._conn()).execute(
            _ENQUEUE_MANY, [" ".join(subscription_patterns(w.event_type)) for w in webhooks],
            [w.event_type for w in webhooks], [w.lead_id for w in webhooks],
            [webhook_payload(w.event_type, w.data, w.now, w.extra) for w in webhooks],
            [w.correlation_id for w in webhooks], [w.lead_captured_at for w in webhooks], [w.now for w in webhooks],
            [f.tier for f in facts], [f.team for f in facts], [f.form for f in facts], WEBHOOK_CHANNEL,
        )

    async def enqueue_handed(self, webhooks: Sequence[WebhookToQueue], room: DispatcherRoom) -> QueuedForHandOff:
        """``enqueue_many``, handing to a dispatcher of this process what it has ``room`` for: those rows
        are leased to it in the insert (``_ENQUEUE_HANDED``) and no NOTIFY is sent."""
        facts = [w.facts or DeliveryFacts() for w in webhooks]
        rows = await (await self._conn()).fetch(
            _ENQUEUE_HANDED, [" ".join(subscription_patterns(w.event_type)) for w in webhooks],
            [w.event_type for w in webhooks], [w.lead_id for w in webhooks],
            [webhook_payload(w.event_type, w.data, w.now, w.extra) for w in webhooks],
            [w.correlation_id for w in webhooks], [w.lead_captured_at for w in webhooks], [w.now for w in webhooks],
            [f.tier for f in facts], [f.team for f in facts], [f.form for f in facts], room.lease_until,
            room.share, list(room.in_flight), list(room.in_flight.values()), room.free,
        )
        rows = sorted(rows, key=lambda row: row["id"])
        return QueuedForHandOff(
            handed=[_typed(DueDelivery, row) for row in rows if row["handed"]],
            claimable=any(not row["handed"] and row["status"] == "pending" for row in rows),
        )

    async def claim_due(
        self, now: datetime, *, limit: int, share: int, in_flight: Mapping[str, int], skip_ids: Sequence[int],
        lease_until: datetime,
    ) -> list[DueDelivery]:
        """Due deliveries, leased until ``lease_until`` (hidden meanwhile: if the sender dies, they become
        due again by themselves), in the order they fell due; a subscription gets at most ``share`` less
        its sends ``in_flight``."""
        rows = await (await self._conn()).fetch(
            _CLAIM, now, limit, share, list(in_flight), list(in_flight.values()), list(skip_ids), lease_until,
        )
        return [_typed(DueDelivery, row) for row in sorted(rows, key=lambda row: (row["due_at"], row["id"]))]

    async def record_attempts(self, attempts: Sequence[FinishedAttempt]) -> RecordedAttempts:
        """Write the attempts' outcomes in one statement; the ids of the deliveries recorded (one left
        out was recorded by someone else meanwhile), and whether a claim would now find a row of their
        subscriptions."""
        rows = await (await self._conn()).fetch(
            _RECORD, [a.delivery_id for a in attempts], [a.attempts_before for a in attempts],
            [a.step.status for a in attempts], [a.step.next_attempt_at or a.at for a in attempts],
            [a.at for a in attempts], [a.outcome.status_code for a in attempts], [a.outcome.error for a in attempts],
            [a.duration_seconds * 1000 for a in attempts], [a.step.label for a in attempts],
            [a.step.next_attempt_at for a in attempts],
        )
        return RecordedAttempts({row["delivery_id"] for row in rows}, any(row["claimable"] for row in rows))

    async def release(self, leased: Sequence[tuple[int, int]], now: datetime) -> int:
        """Give back deliveries leased to a stopping dispatcher, ``(id, attempts)`` as it leased them:
        due ``now``, and every dispatcher woken at commit. Returns how many were still as leased."""
        conn = await self._conn()
        released: str = await conn.execute(_RELEASE, [i for i, _ in leased], [a for _, a in leased], now)
        count = int(released.rsplit(" ", 1)[-1])
        if count:
            await self.wake_dispatchers()
        return count

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery of an active subscription is due."""
        due: datetime | None = await (await self._conn()).fetchval(_NEXT_DUE)
        return due

    async def disable_subscription(self, subscription_id: str, reason: str, now: datetime) -> None:
        """Disable a subscription and hold its pending deliveries (those in flight are held as they end)."""
        await (await self._conn()).execute(_DISABLE, subscription_id, reason, now)

    async def enable_subscription(self, subscription_id: str, now: datetime) -> int:
        """Enable a subscription; its held deliveries become due now (in their per-lead order). Returns how many."""
        released: int = await (await self._conn()).fetchval(_ENABLE, subscription_id, now)
        return released

    async def wake_dispatchers(self) -> None:
        """Wake every dispatcher at commit (a replay or a release is due now)."""
        await (await self._conn()).execute("SELECT pg_notify($1, '')", WEBHOOK_CHANNEL)

    # -- subscriptions --------------------------------------------------------------------------

    async def subscriptions(self) -> list[SubscriptionRow]:
        s = subscription_table
        rows = (await self.session.execute(select(s).where(s.c.deleted_at.is_(None)).order_by(s.c.created_at))).all()
        return [_typed(SubscriptionRow, row._mapping) for row in rows]

    async def subscription(self, subscription_id: str) -> SubscriptionRow | None:
        """The subscription, unless it does not exist or was deleted."""
        s = subscription_table
        row = (await self.session.execute(
            select(s).where(s.c.id == subscription_id, s.c.deleted_at.is_(None))
        )).first()
        return None if row is None else _typed(SubscriptionRow, row._mapping)

    async def create_subscription(
        self, *, subscription_id: str, url: str, description: str | None, event_types: Sequence[str],
        secret_ciphertext: str, now: datetime, filters: SubscriptionFilter | None = None,
    ) -> SubscriptionRow:
        s = subscription_table
        row = (await self.session.execute(
            insert(s)
            .values(id=subscription_id, url=url, description=description, event_types=list(event_types),
                    secret_ciphertext=secret_ciphertext, created_at=now, updated_at=now,
                    **(filters or SubscriptionFilter()).columns())
            .returning(*s.c)
        )).one()
        return _typed(SubscriptionRow, row._mapping)

    async def update_subscription(
        self, subscription_id: str, now: datetime, *, url: str | None = None, description: str | None = None,
        event_types: Sequence[str] | None = None, filters: SubscriptionFilter | None = None,
    ) -> None:
        """Change the fields given (None leaves a field as it is; ``filters`` replaces all of them)."""
        changes: dict[str, Any] = {"url": url, "description": description,
                                   "event_types": None if event_types is None else list(event_types)}
        changes = {name: value for name, value in changes.items() if value is not None}
        if filters is not None:
            changes.update(filters.columns())
        if changes:
            s = subscription_table
            await self.session.execute(update(s).where(s.c.id == subscription_id).values(**changes, updated_at=now))

    async def delete_subscription(self, subscription_id: str, now: datetime) -> None:
        # Soft delete keeps the delivery log readable.
        s = subscription_table
        await self.session.execute(
            update(s).where(s.c.id == subscription_id).values(deleted_at=now, active=False, updated_at=now)
        )

    async def rotate_secret(
        self, subscription_id: str, *, secret_ciphertext: str, previous_secret_ciphertext: str,
        previous_secret_expires_at: datetime, now: datetime,
    ) -> None:
        s = subscription_table
        await self.session.execute(
            update(s).where(s.c.id == subscription_id).values(
                secret_ciphertext=secret_ciphertext, previous_secret_ciphertext=previous_secret_ciphertext,
                previous_secret_expires_at=previous_secret_expires_at, updated_at=now,
            )
        )

    async def secrets_for_update(self) -> list[StoredSecrets]:
        """Every subscription's stored secrets, locked until the transaction ends."""
        s = subscription_table
        rows = (await self.session.execute(
            select(s.c.id.label("subscription_id"), s.c.secret_ciphertext, s.c.previous_secret_ciphertext)
            .with_for_update()
        )).all()
        return [_typed(StoredSecrets, row._mapping) for row in rows]

    async def set_secrets(
        self, subscription_id: str, *, secret_ciphertext: str | None, previous_secret_ciphertext: str | None
    ) -> None:
        """Store re-encrypted secrets (None leaves that one as it is)."""
        values = {name: value for name, value in (("secret_ciphertext", secret_ciphertext),
                                                  ("previous_secret_ciphertext", previous_secret_ciphertext))
                  if value is not None}
        if values:
            s = subscription_table
            await self.session.execute(update(s).where(s.c.id == subscription_id).values(**values))

    # -- the delivery log -----------------------------------------------------------------------

    async def deliveries(
        self, *, subscription_id: str | None, lead_id: str | None, status: DeliveryStatus | None, limit: int
    ) -> list[DeliveryRow]:
        """The delivery log, newest first, narrowed by whichever of the filters are given."""
        d = delivery_table
        conditions: list[ColumnElement[bool]] = []
        if subscription_id:
            conditions.append(d.c.subscription_id == subscription_id)
        if lead_id:
            conditions.append(d.c.lead_id == lead_id)
        if status:
            conditions.append(d.c.status == status)
        rows = (await self.session.execute(
            select(d).where(*conditions).order_by(d.c.created_at.desc(), d.c.id.desc()).limit(limit)
        )).all()
        return [_typed(DeliveryRow, row._mapping) for row in rows]

    async def delivery(self, webhook_id: str) -> DeliveryRow | None:
        d = delivery_table
        row = (await self.session.execute(select(d).where(d.c.webhook_id == webhook_id))).first()
        return None if row is None else _typed(DeliveryRow, row._mapping)

    async def attempts(self, delivery_id: int) -> list[AttemptRow]:
        """A delivery's attempt log, oldest first."""
        a = attempt_table
        rows = (await self.session.execute(select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.id))).all()
        return [_typed(AttemptRow, row._mapping) for row in rows]

    async def replay_delivery(self, webhook_id: str, now: datetime) -> DeliveryRow | None:
        """Make a delivery pending again, due now, with a fresh count of attempts; None if there is none."""
        d = delivery_table
        row = (await self.session.execute(
            update(d).where(d.c.webhook_id == webhook_id).values(**_replayed(now)).returning(*d.c)
        )).first()
        return None if row is None else _typed(DeliveryRow, row._mapping)

    async def replay_subscription(
        self, subscription_id: str, now: datetime, *, statuses: Sequence[str], since: datetime | None,
        lead_id: str | None,
    ) -> int:
        """Replay a subscription's deliveries in ``statuses`` (made at or after ``since``, of ``lead_id``,
        when given); how many."""
        d = delivery_table
        conditions = [d.c.subscription_id == subscription_id, d.c.status.in_(statuses)]
        if since is not None:
            conditions.append(d.c.created_at >= since)
        if lead_id is not None:
            conditions.append(d.c.lead_id == lead_id)
        result = await self.session.execute(update(d).where(*conditions).values(**_replayed(now)).returning(d.c.id))
        return len(result.all())


def _replayed(now: datetime) -> dict[str, Any]:
    return {"status": "pending", "attempts": 0, "replays": delivery_table.c.replays + 1, "next_attempt_at": now,
            "leased_until": None}


async def enqueue_webhook(
    session: AsyncSession,
    *,
    event_type: str,
    lead_id: str,
    data: Mapping[str, Any],
    now: datetime,
    correlation_id: str | None = None,
    lead_captured_at: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
    facts: DeliveryFacts | None = None,
) -> list[str]:
    """Queue ``event_type`` for every subscription to it whose filters ``facts`` pass, inside the
    caller's transaction: pending for an active subscription, held for a disabled one (sent once it
    is enabled again). Without ``facts`` only subscriptions without filters receive it.

    ``extra`` adds top-level fields beside type/timestamp/data (e.g. a chat-readable ``text``).
    Returns the webhook ids (one per subscription). The dispatcher is woken at commit.
    """
    return await WebhookStore(session).enqueue(
        event_type=event_type, lead_id=lead_id, payload=webhook_payload(event_type, data, now, extra), now=now,
        correlation_id=correlation_id, lead_captured_at=lead_captured_at, facts=facts,
    )


class HandOff(Protocol):
    """A running dispatcher of this process, as the transactions queuing webhooks see it."""

    def room(self) -> DispatcherRoom | None:
        """How much it takes on now; None while it is not running."""

    def hand_over(self, queued: QueuedForHandOff) -> None:
        """Send ``queued.handed`` (committed, leased to it), and claim soon when ``queued.claimable``."""


async def enqueue_webhooks(
    session: AsyncSession, webhooks: Sequence[WebhookToQueue], hand_off: HandOff | None = None
) -> None:
    """``enqueue_webhook`` for each of ``webhooks`` in the caller's transaction, in one statement. With
    ``hand_off`` (this process's running dispatcher), what it has room for is handed to it at commit and
    sent at once, without a NOTIFY or a claim; if the process dies first, the rows' lease runs out and
    any dispatcher claims them."""
    if not webhooks:
        return
    room = hand_off.room() if hand_off is not None else None
    if hand_off is None or room is None:
        await WebhookStore(session).enqueue_many(webhooks)
        return
    queued = await WebhookStore(session).enqueue_handed(webhooks, room)
    if queued.handed or queued.claimable:
        after_commit(session, lambda: hand_off.hand_over(queued))


@asynccontextmanager
async def webhook_transaction(db: Database) -> AsyncIterator[WebhookStore]:
    """A ``WebhookStore`` in a transaction of its own (committed when the block ends)."""
    async with db.transaction() as session:
        yield WebhookStore(session)


async def listen_for_wakeups(db: Database, wake: Callable[[], None]) -> asyncpg.Connection:
    """A connection of its own that calls ``wake`` on every NOTIFY on ``WEBHOOK_CHANNEL``."""
    conn: asyncpg.Connection = await asyncpg.connect(asyncpg_dsn(db.url))
    try:
        await conn.add_listener(WEBHOOK_CHANNEL, lambda *_: wake())
    except BaseException:
        await conn.close()
        raise
    return conn

