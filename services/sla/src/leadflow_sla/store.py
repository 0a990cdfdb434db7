"""Every SQL statement of sla, behind named methods: each takes the transaction first, and typed values.

The consumer's and the scheduler's statements run as plain SQL on the session's asyncpg connection:
every event of every lead topic passes here, a firing runs about twice per lead left untouched, and a
SQLAlchemy statement costs about six times the CPU (docs/performance.md). Admin routes and reports,
which run rarely, use SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts.sla_policy import (
    DEFAULT_BREACH_LIMIT,
    DEFAULT_TARGET_SECONDS,
    DEFAULT_WARNING_RATIO,
    TIERS,
    BusinessHours,
    Policy,
    Tier,
)
from leadflow_kit.db import driver_connection
from leadflow_kit.webhooks import DeliveryFacts, WebhookToQueue, enqueue_webhooks
from leadflow_sla.domain import (
    FunnelLead,
    LeadChanges,
    LeadFacts,
    Notice,
    SlaClock,
    TimelineEvent,
    TimelineRecord,
    firsts_within_batch,
)
from leadflow_sla.notify import Notification
from leadflow_sla.reports import NO_VALUE, GroupBy
from leadflow_sla.revenue import ALWAYS_IN_FORCE, RateTable, Spend
from leadflow_sla.tables import campaign_spend, currency_rate, lead, lead_event, rep_calendar, sla_clock, sla_policy

R = TypeVar("R")


@dataclass(frozen=True)
class StoredPolicy:
    """An SLA policy as the admin API shows it (an ``sla_policy`` row)."""

    id: str
    name: str
    tier: Tier
    team_id: str | None
    target_seconds: int
    warning_ratio: float
    breach_limit: int
    business_hours: dict[str, Any] | None
    use_owner_hours: bool
    active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StoredSpend(Spend):
    """A ``campaign_spend`` row."""

    id: str
    created_at: datetime


@dataclass(frozen=True)
class RepCalendar:
    """A rep's own working hours (a ``rep_calendar`` row)."""

    rep_id: str
    business_hours: dict[str, Any]
    updated_at: datetime


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"no JSON form for a {type(value).__name__}")


class _Row(Protocol):
    """A row by column name: an asyncpg record or a SQLAlchemy row's mapping."""

    def __getitem__(self, column: str) -> Any: ...


def _record(kind: type[R], row: _Row) -> R:
    """The dataclass ``kind`` from a row's columns of the same names (the row may have more)."""
    return kind(**{name: row[name] for name in _field_names(kind)})


def _field_names(kind: type[Any]) -> tuple[str, ...]:
    """A dataclass's field names, which never change: ``fields`` builds them anew on each call, and a
    batch's leads are read back a row at a time."""
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _update_statement(table: str, key: str, changes: Mapping[str, Any]) -> tuple[str, list[Any]]:
    # Sorted, so each set of changed columns is one statement text in asyncpg's prepared-statement cache.
    columns = sorted(changes)
    assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, start=2))
    return f"UPDATE {table} SET {assignments} WHERE {key} = $1", [changes[c] for c in columns]


# One round trip per batch: its timeline rows go in with one insert, and the leads whose facts its events
# move are locked and returned: those that exist locked with FOR UPDATE, in key order, then the new ones
# created in key order (the insert reads ``locked``, so it runs after it), so two transactions locking some
# of the same leads never wait on each other crosswise. A lock writes no row version. A no-op upsert (ON
# CONFLICT DO UPDATE) would write one, and a version that does not fit on its row's page is an entry in
# each of the table's indexes (sixteen, most of them the lead search's): over a million leads, 200 such
# upserts took 32 ms and eleven WAL records a lead, 200 locks 1 ms (docs/performance.md, session 24). A
# lead that another transaction inserted after the statement's snapshot is neither locked nor created here;
# ``record_and_lock`` takes it with ``_LOCK_OR_CREATE``.
# The first row (a row of NULL facts when no lead was locked or created) also carries what tells a measured
# event its subject's first at its stage: of the batch's candidates (no earlier event of the batch precedes
# them, ``domain.firsts_within_batch``), the positions with no row at that stage before the batch (the
# snapshot every part of the statement reads), and the timeline rows recorded now (an event a concurrent
# transaction recorded first is not). Python matches them, by key: compared in SQL, every candidate met every
# recorded row in a nested loop (hash joins are off on the pipeline's connections), 57,000 rows compared on
# average by each of sla's slowest statements at 400 leads/s (auto_explain, docs/performance.md, session 30).
_RECORD_AND_LOCK = """
WITH timeline AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::timestamptz[], $8::timestamptz[], $9::text[])
        AS t(position, lead_id, event_id, event_type, stage, source, at, lead_captured_at, details)
), recorded AS (
    INSERT INTO lead_event (lead_id, event_id, event_type, stage, source, at, lead_captured_at, details)
    SELECT lead_id, event_id, event_type, stage, source, at, lead_captured_at, details::jsonb
    FROM timeline ORDER BY position
    ON CONFLICT DO NOTHING
    RETURNING lead_id, event_id
), candidates AS (
    SELECT * FROM unnest($10::int[], $11::text[], $12::text[], $13::text[])
        AS c(position, subject, stage, event_type_prefix)
), firsts AS (
    SELECT c.position FROM candidates AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM lead_event AS earlier
        WHERE earlier.lead_id = c.subject AND earlier.stage = c.stage
          AND (c.event_type_prefix IS NULL OR starts_with(earlier.details ->> 'event_type', c.event_type_prefix)))
), locked AS (
    SELECT * FROM lead WHERE lead_id = ANY($14::text[]) ORDER BY lead_id FOR UPDATE
), created AS (
    INSERT INTO lead (lead_id, captured_at)
    SELECT lead_id, captured_at FROM unnest($14::text[], $15::timestamptz[]) AS l(lead_id, captured_at)
    WHERE lead_id NOT IN (SELECT lead_id FROM locked)
    ORDER BY lead_id
    ON CONFLICT (lead_id) DO NOTHING
    RETURNING *
)
SELECT facts.*,
       CASE WHEN facts.first_row IS NOT FALSE THEN ARRAY(SELECT position FROM firsts) END AS first_positions,
       CASE WHEN facts.first_row IS NOT FALSE THEN written.lead_ids END AS recorded_lead_ids,
       CASE WHEN facts.first_row IS NOT FALSE THEN written.event_ids END AS recorded_event_ids
FROM (SELECT array_agg(lead_id) AS lead_ids, array_agg(event_id) AS event_ids FROM recorded) AS written
LEFT JOIN (
    SELECT *, row_number() OVER () = 1 AS first_row FROM (SELECT * FROM locked UNION ALL SELECT * FROM created) AS l
) AS facts ON true
"""


def _captured_at_by_lead(records: Sequence[TimelineRecord]) -> dict[str, datetime | None]:
    """Each lead whose facts the records move, in their order, with the capture time its first record says."""
    captured: dict[str, datetime | None] = {}
    for record in records:
        captured.setdefault(record.facts_lead_id, record.lead_captured_at)
    return captured


def record_and_lock_arguments(records: Sequence[TimelineRecord]) -> list[list[Any]]:
    """``_RECORD_AND_LOCK``'s parameters for a batch."""
    timeline = [(position, lead_id, record) for position, record in enumerate(records)
                for lead_id in record.lead_ids]
    candidates = [(position, records[position]) for position in firsts_within_batch(records)]
    captured = _captured_at_by_lead(records)
    return [
        [p for p, _, _ in timeline], [lead_id for _, lead_id, _ in timeline],
        [r.event_id for _, _, r in timeline], [r.event_type for _, _, r in timeline],
        [r.stage for _, _, r in timeline], [r.source for _, _, r in timeline], [r.at for _, _, r in timeline],
        [r.lead_captured_at for _, _, r in timeline], [json.dumps(r.details) for _, _, r in timeline],
        [p for p, _ in candidates], [r.subject for _, r in candidates], [r.stage for _, r in candidates],
        [r.earlier_event_type_prefix for _, r in candidates],
        list(captured), list(captured.values()),
    ]


# The leads a concurrent transaction created after ``_RECORD_AND_LOCK``'s snapshot: the no-op DO UPDATE locks
# and returns a row whoever inserted it (it writes a row version, which this rare case can afford).
_LOCK_OR_CREATE = """
INSERT INTO lead (lead_id, captured_at)
SELECT lead_id, captured_at FROM unnest($1::text[], $2::timestamptz[]) AS l(lead_id, captured_at)
ORDER BY lead_id
ON CONFLICT (lead_id) DO UPDATE SET lead_id = EXCLUDED.lead_id
RETURNING *
"""

# Every lead's changes in one statement: each lead's JSON object names the columns it changes; the others
# keep what the row holds (jsonb_populate_record over the row itself).
_LEAD_COLUMNS = [column.name for column in lead.c if column.name != "lead_id"]
_UPDATE_LEADS = f"""
UPDATE lead SET ({", ".join(_LEAD_COLUMNS)}) = (
    SELECT {", ".join(f"changed.{column}" for column in _LEAD_COLUMNS)}
    FROM jsonb_populate_record(lead, changes.changes::jsonb) AS changed
)
FROM unnest($1::text[], $2::text[]) AS changes(lead_id, changes)
WHERE lead.lead_id = changes.lead_id
"""

# ``json.dumps(changes, default=_json_value)``, its encoder built once: dumps builds one per call otherwise.
_LEAD_CHANGES_JSON = json.JSONEncoder(default=_json_value)

# A repeat form fill leaves the funnel: its own lead row points at the lead it was merged into.
_MERGE_INTO = """
INSERT INTO lead (lead_id, captured_at, merged_into) VALUES ($1, $2, $3)
ON CONFLICT (lead_id) DO UPDATE SET merged_into = EXCLUDED.merged_into
"""

# A batch's clocks choose among every active policy, read once with the calendars of the batch's owners
# (an uncorrelated subquery: evaluated once, not per policy row).
_POLICIES_AND_CALENDARS = """
SELECT sla_policy.*,
       (SELECT jsonb_object_agg(rep_id, business_hours) FROM rep_calendar WHERE rep_id = ANY($1::text[]))
           AS owner_hours
FROM sla_policy
WHERE active
"""

_CLOCK_COLUMNS = ("id", "lead_id", "routed_event_id", "tier", "team_id", "owner_rep_id", "policy_id",
                  "correlation_id", "lead_captured_at", "target_seconds", "warning_ratio", "breach_limit",
                  "business_hours", "started_at", "warning_at", "due_at", "status", "next_fire_at", "stopped_at",
                  "stop_reason")
_CLOCK_TYPES = ("text", "text", "text", "text", "text", "text", "text", "text", "timestamptz", "int",
                "float8", "int", "text", "timestamptz", "timestamptz", "timestamptz", "text", "timestamptz",
                "timestamptz", "text")
# All of a batch's new clocks in one statement, in the order they were opened.
_INSERT_CLOCKS = f"""
INSERT INTO sla_clock ({", ".join(_CLOCK_COLUMNS)})
SELECT {", ".join("business_hours::jsonb" if c == "business_hours" else c for c in _CLOCK_COLUMNS)}
FROM unnest({", ".join(f"${n}::{t}[]" for n, t in enumerate(_CLOCK_TYPES, start=1))})
    WITH ORDINALITY AS c({", ".join(_CLOCK_COLUMNS)}, position)
ORDER BY position
ON CONFLICT DO NOTHING
"""

# Only the latest routing's clock runs; events may arrive out of order, so the latest is by start time.
_SUPERSEDE_OLDER_CLOCKS = """
UPDATE sla_clock AS older
SET status = 'superseded', next_fire_at = NULL, stopped_at = latest.started_at, stop_reason = 'rerouted'
FROM (
    SELECT id, started_at FROM sla_clock
    WHERE lead_id = $1 AND status = 'open'
    ORDER BY started_at DESC, created_at DESC
    LIMIT 1
) AS latest
WHERE older.lead_id = $1 AND older.status = 'open' AND older.id <> latest.id
"""

_STOP_CLOCKS = """
UPDATE sla_clock SET status = 'stopped', stopped_at = $2, stop_reason = $3, next_fire_at = NULL
WHERE lead_id = $1 AND status = 'open' AND started_at <= $2
RETURNING *
"""

# A lead sent to nurture has no rep to chase it: its running clocks end without an outcome.
_RETIRE_CLOCKS = """
UPDATE sla_clock SET status = 'superseded', stopped_at = $2, stop_reason = $3, next_fire_at = NULL
WHERE lead_id = $1 AND status = 'open'
"""
_LOCK_RUNNING_CLOCK = """
SELECT * FROM sla_clock WHERE lead_id = $1 AND status = 'open' ORDER BY started_at DESC LIMIT 1 FOR UPDATE
"""

_CLAIM_DUE = """
SELECT * FROM sla_clock WHERE next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED
"""
# A round's notices in one statement; each one recorded comes back with how many breach notices its lead had
# before the statement (its subquery reads the statement's starting snapshot, which the insert beside it does
# not change). A notice its clock already has (of its kind) is not recorded, and must not go out twice.
_RECORD_NOTICES = """
WITH recorded AS (
    INSERT INTO sla_notice (clock_id, kind, event_id, lead_id, threshold_at, emitted_at)
    SELECT clock_id, kind, event_id, lead_id, threshold_at, emitted_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
        WITH ORDINALITY AS n(clock_id, kind, event_id, lead_id, threshold_at, emitted_at, position)
    ORDER BY position
    ON CONFLICT DO NOTHING
    RETURNING clock_id, kind, lead_id
)
SELECT recorded.clock_id, recorded.kind,
       (SELECT count(*) FROM sla_notice AS earlier
        WHERE earlier.lead_id = recorded.lead_id AND earlier.kind = 'breach') AS breaches_before
FROM recorded
"""
# What a round of firing changes on its clocks, in one statement: a threshold's time and the breach's number
# once fired (NULL: unchanged), and the next threshold's time (NULL: nothing left to fire).
_UPDATE_FIRED_CLOCKS = """
UPDATE sla_clock AS clock
SET warned_at = coalesce(fired.warned_at, clock.warned_at),
    breached_at = coalesce(fired.breached_at, clock.breached_at),
    breach_number = coalesce(fired.breach_number, clock.breach_number),
    next_fire_at = fired.next_fire_at
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::timestamptz[])
    AS fired(id, warned_at, breached_at, breach_number, next_fire_at)
WHERE clock.id = fired.id
"""

GROUP_COLUMNS = {
    "source": lead.c.source,
    "utm_campaign": lead.c.utm_campaign,
    "form": lead.c.form_key,
    "team": lead.c.team_id,
    "rep": lead.c.rep_id,
}


def _policy(row: _Row) -> Policy:
    hours = BusinessHours.model_validate(row["business_hours"]) if row["business_hours"] else None
    return Policy(
        id=row["id"], tier=row["tier"], target_seconds=row["target_seconds"], warning_ratio=row["warning_ratio"],
        breach_limit=row["breach_limit"], business_hours=hours, use_owner_hours=row["use_owner_hours"],
        team_id=row["team_id"],
    )


class SlaStore:
    """sla's database: timelines, lead facts, clocks and notices, policies and calendars."""

    # -- the consumer: timelines, lead facts, clocks ------------------------------------------

    async def record_and_lock(
        self, session: AsyncSession, records: list[TimelineRecord]
    ) -> tuple[dict[str, LeadFacts], set[int]]:
        """Put each event on its leads' timelines (a repeated event once) and lock the leads whose facts the
        events move (created, captured when their first event says, when new). Returns those leads' facts by
        id, and the positions in ``records`` of the events that are their subject's first measured event at
        their stage, as if recorded one by one."""
        conn = await driver_connection(session)
        rows = await conn.fetch(_RECORD_AND_LOCK, *record_and_lock_arguments(records))
        first = next(row for row in rows if row["first_positions"] is not None)
        recorded = set(zip(first["recorded_lead_ids"] or (), first["recorded_event_ids"] or (), strict=True))
        firsts = {position for position in first["first_positions"]
                  if (records[position].subject, records[position].event_id) in recorded}
        leads = {row["lead_id"]: _record(LeadFacts, row) for row in rows if row["lead_id"] is not None}
        captured = _captured_at_by_lead(records)
        if raced := [lead_id for lead_id in captured if lead_id not in leads]:
            for row in await conn.fetch(_LOCK_OR_CREATE, raced, [captured[lead_id] for lead_id in raced]):
                leads[row["lead_id"]] = _record(LeadFacts, row)
        return leads, firsts

    async def update_leads(self, session: AsyncSession, changes: Mapping[str, LeadChanges]) -> None:
        """Set on each lead the columns its changes name."""
        conn = await driver_connection(session)
        await conn.execute(_UPDATE_LEADS, list(changes), [_LEAD_CHANGES_JSON.encode(c) for c in changes.values()])

    async def merge_into(
        self, session: AsyncSession, fill_lead_id: str, captured_at: datetime | None, lead_id: str
    ) -> None:
        conn = await driver_connection(session)
        await conn.execute(_MERGE_INTO, fill_lead_id, captured_at, lead_id)

    async def policies_and_calendars(
        self, session: AsyncSession, rep_ids: Sequence[str]
    ) -> tuple[list[Policy], dict[str, dict[str, Any]]]:
        """Every active policy, and the stored calendars of those of ``rep_ids`` that have one (none without
        an active policy: only a policy counts in its owner's hours)."""
        conn = await driver_connection(session)
        rows = await conn.fetch(_POLICIES_AND_CALENDARS, list(rep_ids))
        return [_policy(r) for r in rows], ((rows[0]["owner_hours"] or {}) if rows else {})

    async def insert_clocks(self, session: AsyncSession, clocks: Sequence[SlaClock]) -> None:
        """New clocks, in this order; one whose routed event already opened a clock is left out."""
        if not clocks:
            return
        conn = await driver_connection(session)
        columns = [[getattr(clock, column) for clock in clocks] for column in _CLOCK_COLUMNS]
        hours = _CLOCK_COLUMNS.index("business_hours")
        columns[hours] = [json.dumps(h) if h is not None else None for h in columns[hours]]
        await conn.execute(_INSERT_CLOCKS, *columns)

    async def supersede_older_clocks(self, session: AsyncSession, lead_id: str) -> None:
        conn = await driver_connection(session)
        await conn.execute(_SUPERSEDE_OLDER_CLOCKS, lead_id)

    async def stop_clocks(self, session: AsyncSession, lead_id: str, at: datetime, reason: str) -> list[SlaClock]:
        """Stops the lead's open clocks started by ``at``; returns them."""
        conn = await driver_connection(session)
        return [_record(SlaClock, r) for r in await conn.fetch(_STOP_CLOCKS, lead_id, at, reason)]

    async def retire_clocks(self, session: AsyncSession, lead_id: str, at: datetime, reason: str) -> None:
        conn = await driver_connection(session)
        await conn.execute(_RETIRE_CLOCKS, lead_id, at, reason)

    async def lock_running_clock(self, session: AsyncSession, lead_id: str) -> SlaClock | None:
        """The lead's latest open clock, locked."""
        conn = await driver_connection(session)
        row = await conn.fetchrow(_LOCK_RUNNING_CLOCK, lead_id)
        return _record(SlaClock, row) if row else None

    # -- the scheduler: due clocks and their notices ------------------------------------------

    async def claim_due_clocks(self, session: AsyncSession, now: datetime, limit: int) -> list[SlaClock]:
        """Clocks with a threshold due, locked; a clock another replica holds is skipped, not waited for."""
        conn = await driver_connection(session)
        return [_record(SlaClock, r) for r in await conn.fetch(_CLAIM_DUE, now, limit)]

    async def record_notices(self, session: AsyncSession, notices: Sequence[Notice]) -> dict[tuple[str, str], int]:
        """Record ``notices``; those recorded, by clock and kind, each with how many breach notices its lead had
        before these. One its clock already had is left out: it was emitted before and must not go out twice."""
        if not notices:
            return {}
        conn = await driver_connection(session)
        rows = await conn.fetch(
            _RECORD_NOTICES, [n.clock_id for n in notices], [n.kind for n in notices], [n.event_id for n in notices],
            [n.lead_id for n in notices], [n.threshold_at for n in notices], [n.emitted_at for n in notices])
        return {(row["clock_id"], row["kind"]): int(row["breaches_before"]) for row in rows}

    async def update_clock(self, session: AsyncSession, clock_id: str, changes: Mapping[str, Any]) -> None:
        conn = await driver_connection(session)
        statement, values = _update_statement("sla_clock", "id", changes)
        await conn.execute(statement, clock_id, *values)

    async def update_fired_clocks(self, session: AsyncSession, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """Each clock's changes after a round of firing (``domain.fired_changes``), by clock id."""
        if not changes:
            return
        conn = await driver_connection(session)
        await conn.execute(
            _UPDATE_FIRED_CLOCKS, list(changes), [c.get("warned_at") for c in changes.values()],
            [c.get("breached_at") for c in changes.values()], [c.get("breach_number") for c in changes.values()],
            [c["next_fire_at"] for c in changes.values()])

    async def enqueue_notifications(
        self, session: AsyncSession, notifications: Sequence[Notification], now: datetime
    ) -> None:
        """Queue each notification for every active webhook subscription to it, in this transaction, in
        one statement."""
        await enqueue_webhooks(session, [
            WebhookToQueue(
                event_type=n.event_type, lead_id=n.lead_id, data=n.data, now=now, correlation_id=n.correlation_id,
                lead_captured_at=n.lead_captured_at, extra={"text": n.text},
                facts=DeliveryFacts(tier=n.data.get("tier"), team=n.data.get("team_id")),
            )
            for n in notifications
        ])

    async def open_clock_counts(self, session: AsyncSession) -> dict[str, int]:
        """Open clocks per tier (tiers without one are absent)."""
        rows = (
            await session.execute(
                select(sla_clock.c.tier, func.count()).where(sla_clock.c.status == "open").group_by(sla_clock.c.tier)
            )
        ).all()
        return {row[0]: int(row[1]) for row in rows}

    # -- reads: timelines and the funnel ------------------------------------------------------

    async def read_one_snapshot(self, session: AsyncSession) -> None:
        """The transaction's reads all see one snapshot (REPEATABLE READ; before its first read). A timeline is
        three reads (events, facts, clocks) of what one consumer batch writes together: in separate snapshots a
        batch committed between them showed a lead's new clock without the routed events that opened it."""
        await (await driver_connection(session)).execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    async def timeline_events(self, session: AsyncSession, lead_id: str) -> list[TimelineEvent]:
        statement = select(lead_event).where(lead_event.c.lead_id == lead_id).order_by(lead_event.c.at)
        return [_record(TimelineEvent, row._mapping) for row in await session.execute(statement)]

    async def lead_facts(self, session: AsyncSession, lead_id: str) -> LeadFacts | None:
        row = (await session.execute(select(lead).where(lead.c.lead_id == lead_id))).first()
        return _record(LeadFacts, row._mapping) if row is not None else None

    async def clocks_of_lead(self, session: AsyncSession, lead_id: str) -> list[SlaClock]:
        statement = select(sla_clock).where(sla_clock.c.lead_id == lead_id).order_by(sla_clock.c.started_at)
        return [_record(SlaClock, row._mapping) for row in await session.execute(statement)]

    async def funnel_leads(
        self, session: AsyncSession, start: datetime, end: datetime, group_by: GroupBy | None,
        *, with_deal_only: bool = False,
    ) -> list[FunnelLead]:
        """The leads captured in [start, end), merged fills left out, each in its group (``with_deal_only``:
        only those with a deal amount, all the money figures need)."""
        group_column = GROUP_COLUMNS[group_by] if group_by else None
        columns: list[Any] = [lead.c.stage_rank, lead.c.speed_to_lead_seconds, lead.c.sla_outcome,
                              lead.c.deal_amount, lead.c.deal_currency, lead.c.lost_at, lead.c.converted_at]
        if group_column is not None:
            columns.append(group_column.label("group_key"))
        where = [lead.c.captured_at >= start, lead.c.captured_at < end, lead.c.merged_into.is_(None)]
        if with_deal_only:
            where.append(lead.c.deal_amount.is_not(None))
        rows = (await session.execute(select(*columns).where(*where))).all()
        return [
            FunnelLead(
                group=(row.group_key or NO_VALUE) if group_column is not None else "total",
                stage_rank=row.stage_rank,
                speed_to_lead_seconds=row.speed_to_lead_seconds,
                sla_outcome=row.sla_outcome,
                deal_amount=row.deal_amount,
                deal_currency=row.deal_currency,
                lost=row.lost_at is not None,
                converted_at=row.converted_at,
            )
            for row in rows
        ]

    # -- admin: policies and calendars --------------------------------------------------------

    async def list_policies(self, session: AsyncSession) -> list[StoredPolicy]:
        statement = select(sla_policy).order_by(sla_policy.c.tier, sla_policy.c.team_id)
        return [_record(StoredPolicy, row._mapping) for row in await session.execute(statement)]

    async def create_policy(self, session: AsyncSession, policy_id: str, values: Mapping[str, Any]) -> StoredPolicy:
        """``values``: the policy's columns (JSON-ready); a second policy for a tier and team is an IntegrityError."""
        row = (
            await session.execute(insert(sla_policy).values(id=policy_id, **values).returning(*sla_policy.c))
        ).one()
        return _record(StoredPolicy, row._mapping)

    async def get_policy(self, session: AsyncSession, policy_id: str) -> StoredPolicy | None:
        row = (await session.execute(select(sla_policy).where(sla_policy.c.id == policy_id))).first()
        return _record(StoredPolicy, row._mapping) if row is not None else None

    async def update_policy(
        self, session: AsyncSession, policy_id: str, changes: Mapping[str, Any], now: datetime
    ) -> StoredPolicy | None:
        """``changes``: the columns to set (JSON-ready); none still answers with the policy."""
        statement = update(sla_policy).where(sla_policy.c.id == policy_id)
        if changes:
            statement = statement.values(**changes, updated_at=now)
        else:
            statement = statement.values(updated_at=sla_policy.c.updated_at)
        row = (await session.execute(statement.returning(*sla_policy.c))).first()
        return _record(StoredPolicy, row._mapping) if row is not None else None

    async def delete_policy(self, session: AsyncSession, policy_id: str) -> bool:
        statement = delete(sla_policy).where(sla_policy.c.id == policy_id).returning(sla_policy.c.id)
        return (await session.execute(statement)).first() is not None

    async def ensure_default_policies(self, session: AsyncSession) -> None:
        for tier in TIERS:
            await session.execute(
                insert(sla_policy)
                .values(id=f"default-{tier}", name=f"Default {tier}", tier=tier,
                        target_seconds=DEFAULT_TARGET_SECONDS[tier], warning_ratio=DEFAULT_WARNING_RATIO,
                        breach_limit=DEFAULT_BREACH_LIMIT)
                .on_conflict_do_nothing()
            )

    async def put_rep_calendar(
        self, session: AsyncSession, rep_id: str, hours: BusinessHours, now: datetime
    ) -> RepCalendar:
        stored = hours.model_dump(mode="json")
        row = (
            await session.execute(
                insert(rep_calendar)
                .values(rep_id=rep_id, business_hours=stored, updated_at=now)
                .on_conflict_do_update(index_elements=[rep_calendar.c.rep_id],
                                       set_={"business_hours": stored, "updated_at": now})
                .returning(*rep_calendar.c)
            )
        ).one()
        return _record(RepCalendar, row._mapping)

    async def get_rep_calendar(self, session: AsyncSession, rep_id: str) -> RepCalendar | None:
        row = (await session.execute(select(rep_calendar).where(rep_calendar.c.rep_id == rep_id))).first()
        return _record(RepCalendar, row._mapping) if row is not None else None

    async def list_rep_calendars(self, session: AsyncSession) -> list[RepCalendar]:
        statement = select(rep_calendar).order_by(rep_calendar.c.rep_id)
        return [_record(RepCalendar, row._mapping) for row in await session.execute(statement)]

    async def delete_rep_calendar(self, session: AsyncSession, rep_id: str) -> bool:
        statement = delete(rep_calendar).where(rep_calendar.c.rep_id == rep_id).returning(rep_calendar.c.rep_id)
        return (await session.execute(statement)).first() is not None


    # -- admin and reports: currency rates and campaign spend ------------------------------------

    async def currency_rate_tables(self, session: AsyncSession) -> list[RateTable]:
        """Every rate table, by the day it comes into force (ascending)."""
        rows = await session.execute(select(currency_rate.c.effective_from, currency_rate.c.currency,
                                            currency_rate.c.rate).order_by(currency_rate.c.effective_from))
        tables: dict[date, dict[str, Decimal]] = {}
        for row in rows:
            tables.setdefault(row.effective_from, {})[row.currency] = row.rate
        return [RateTable(day, per_unit) for day, per_unit in tables.items()]

    async def replace_currency_rates(
        self, session: AsyncSession, rates: Mapping[str, Decimal], now: datetime, effective_from: date | None
    ) -> None:
        """The table in force from ``effective_from`` on becomes exactly ``rates``; without a day, every table
        goes and ``rates`` is in force on every day."""
        replaced = delete(currency_rate)
        if effective_from is not None:
            replaced = replaced.where(currency_rate.c.effective_from == effective_from)
        await session.execute(replaced)
        if rates:
            day = ALWAYS_IN_FORCE if effective_from is None else effective_from
            await session.execute(insert(currency_rate).values(
                [{"effective_from": day, "currency": code, "rate": rate, "updated_at": now}
                 for code, rate in rates.items()]))

    async def delete_currency_rate_table(self, session: AsyncSession, effective_from: date) -> bool:
        """Whether a table in force from that day was there to delete."""
        statement = (delete(currency_rate).where(currency_rate.c.effective_from == effective_from)
                     .returning(currency_rate.c.currency))
        return (await session.execute(statement)).first() is not None

    async def insert_spend(self, session: AsyncSession, spends: Sequence[StoredSpend]) -> None:
        if spends:
            await session.execute(insert(campaign_spend).values([asdict(spend) for spend in spends]))

    async def spend_between(
        self, session: AsyncSession, first: date | None, last: date | None, utm_campaign: str | None = None
    ) -> list[StoredSpend]:
        """Spend whose period shares a day with [first, last] (either end open when None)."""
        statement = select(campaign_spend)
        if first is not None:
            statement = statement.where(campaign_spend.c.period_to >= first)
        if last is not None:
            statement = statement.where(campaign_spend.c.period_from <= last)
        if utm_campaign is not None:
            statement = statement.where(campaign_spend.c.utm_campaign == utm_campaign)
        statement = statement.order_by(campaign_spend.c.period_from, campaign_spend.c.utm_campaign,
                                       campaign_spend.c.source, campaign_spend.c.id)
        return [_record(StoredSpend, row._mapping) for row in await session.execute(statement)]

    async def delete_spend(self, session: AsyncSession, spend_id: str) -> bool:
        statement = delete(campaign_spend).where(campaign_spend.c.id == spend_id).returning(campaign_spend.c.id)
        return (await session.execute(statement)).first() is not None
