"""Outgoing webhooks per the Standard Webhooks spec, delivered durably from the database.

A service enqueues a delivery in the same transaction as the business change
(``enqueue_webhook``); ``WebhookDispatcher`` claims due rows with ``FOR UPDATE SKIP LOCKED``,
signs them (``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature``, HMAC-SHA256 via the
``standardwebhooks`` package), POSTs them and records the outcome, retrying on a schedule that starts
fast and backs off (with jitter, honouring ``Retry-After``) until it runs out. Each subscription has
its own bounded number of sends in flight, so a slow receiver holds back only itself; a lead's
deliveries to one subscription go out in the order they were queued; a success wakes the
subscription's backlog at once. A subscription that is disabled (by an admin, or by its endpoint
answering 410) keeps its deliveries ``held`` until it is enabled again. Every final outcome
(delivered or dead) becomes a ``lead.delivered.v1`` event through the outbox.
``webhook_admin_router`` is the admin API for subscriptions, the delivery log and replay.

URLs are checked against ``WebhookSettings.egress_policy()`` when saved and again on every
connection (``leadflow_kit.egress``); signing secrets are stored encrypted (``leadflow_kit.secretbox``).

Wiring, in a service::

    # tables.py
    metadata = new_metadata()
    define_webhook_tables(metadata)
    # first migration, then the later revisions' steps in theirs
    create_webhook_tables(op)
    upgrade_webhook_tables_2(op)
    # settings.py
    class Settings(WebhookSettings): ...
    # app.py
    create_service_app(..., routers=[webhook_admin_router(read_scope=..., write_scope=...)],
                       background=[run_webhook_dispatcher])
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
import httpx
from alembic import context
from alembic.operations import Operations
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from leadflow_contracts import LeadDelivered, new_event
from leadflow_kit.auth import require_scope
from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import NAMING_CONVENTION, Database, asyncpg_dsn, driver_connection
from leadflow_kit.egress import EgressPolicy, destination_refusal, guarded_client, parse_networks, parse_url
from leadflow_kit.errors import FieldError
from leadflow_kit.failures import is_infrastructure_error
from leadflow_kit.outbox import Outbox
from leadflow_kit.secretbox import DEVELOPMENT_KEY, SecretBox, parse_keys
from leadflow_kit.settings import ServiceSettings
from leadflow_kit.version import VERSION

log = logging.getLogger(__name__)

WEBHOOK_CHANNEL = "leadflow_webhook"
SECRET_PREFIX = "whsec_"
ALL_EVENT_TYPES = "*"
# Delays after the immediate first attempt: fast at first (a receiver that blips costs seconds), then
# the spec's backoff, about three days in all (1 s + 5 s + ... + 24 h = 75.6 h).
DEFAULT_RETRY_SCHEDULE = (1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0,
                          86400.0)
# How much of a failed response's body the delivery log keeps: enough to debug, too little to be a
# channel for reading back what a receiver answered.
FAILURE_BODY_BYTES = 1024
# A 2xx body is read (and dropped) up to this much so the connection can be reused.
SUCCESS_BODY_BYTES = 65536
THROTTLE_STATUSES = frozenset({429, 502, 503, 504})
DELIVERY_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

DeliveryStatus = Literal["pending", "held", "delivered", "dead"]


class WebhookSettings(ServiceSettings):
    """Settings of a service that sends webhooks; tests shorten the schedule."""

    webhook_timeout_seconds: float = 15.0
    webhook_retry_schedule_seconds: list[float] = Field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    # When set, the schedule becomes base * 2**n (same number of retries): handy for short test runs.
    webhook_retry_base_seconds: float | None = Field(default=None, gt=0)
    webhook_jitter_ratio: float = Field(default=0.2, ge=0, le=1)
    webhook_max_retry_after_seconds: float = 86400.0
    webhook_poll_interval_seconds: float = 0.5
    webhook_batch_size: int = 50
    # Sends in flight at once: in all, and to one subscription (a slow receiver fills only its own).
    webhook_concurrency: int = Field(default=64, ge=1)
    webhook_subscription_concurrency: int = Field(default=8, ge=1)
    webhook_secret_overlap_seconds: float = 86400.0
    # Plain http is for local receivers in development and tests; production refuses it.
    webhook_allow_http: bool = False
    # Networks a webhook may reach although they are not public (loopback, private, ...): explicit,
    # comma-separated ("127.0.0.0/8,::1"); empty allows public unicast addresses only.
    webhook_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    # Fernet keys that encrypt signing secrets at rest, comma-separated, newest first: the first
    # encrypts, all decrypt. Required in production; elsewhere a fixed development key stands in.
    webhook_encryption_keys: SecretStr | None = None
    # Each final outcome (delivered/dead) becomes lead.delivered.v1; a service whose webhooks are
    # not lead hand-offs (sla's notifications) may turn that off.
    webhook_emit_delivered_events: bool = True
    # Retention (leadflow_kit.retention.webhook_rules): the attempt log, and deliveries once delivered.
    webhook_attempt_retention_days: float = Field(default=30.0, gt=0)
    webhook_delivered_retention_days: float = Field(default=30.0, gt=0)

    @field_validator("webhook_allowed_networks", mode="before")
    @classmethod
    def _comma_separated_networks(cls, value: Any) -> Any:
        return list(parse_networks(value)) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _webhook_secrets_and_egress(self) -> WebhookSettings:
        keys = self._encryption_keys()
        if self.environment == "production":
            if not keys or DEVELOPMENT_KEY in keys:
                raise ValueError("webhook_encryption_keys must be set to your own Fernet key(s) in production")
            if self.webhook_allow_http:
                raise ValueError("webhook_allow_http is for development and tests; production sends https only")
        return self

    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy(allow_http=self.webhook_allow_http, allowed_networks=tuple(self.webhook_allowed_networks))

    def secret_box(self) -> SecretBox:
        return SecretBox(self._encryption_keys() or [DEVELOPMENT_KEY])

    def _encryption_keys(self) -> list[str]:
        return parse_keys(self.webhook_encryption_keys.get_secret_value()) if self.webhook_encryption_keys else []

    def migration_attributes(self) -> dict[str, Any]:
        return {**super().migration_attributes(), "webhook_secret_box": self.secret_box()}

    def webhook_retry_schedule(self) -> list[float]:
        """Delays before retry 1, 2, ...; after the last one fails the delivery is dead."""
        base = self.webhook_retry_base_seconds
        if base is None:
            return list(self.webhook_retry_schedule_seconds)
        return [base * 2**n for n in range(len(self.webhook_retry_schedule_seconds))]


# -- tables ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookTables:
    subscription: Table
    delivery: Table
    attempt: Table


def _revision_2_indexes() -> list[Index]:
    return [
        # The claim takes each subscription's due rows in turn (fairness between receivers).
        Index("ix_webhook_delivery_pending_by_subscription", "subscription_id", "next_attempt_at", "id",
              postgresql_where=text("status = 'pending'")),
        # A lead's earlier open delivery to the same subscription goes first (per-lead order).
        Index("ix_webhook_delivery_open_by_lead", "subscription_id", "lead_id", "id",
              postgresql_where=text("status IN ('pending', 'held')")),
    ]


def define_webhook_tables(metadata: MetaData) -> WebhookTables:
    """Put the webhook tables on a service's MetaData (so Alembic knows them)."""
    subscription = Table(
        "webhook_subscription",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("url", Text, nullable=False),
        Column("description", Text),
        Column("event_types", ARRAY(String(100)), nullable=False),
        # Encrypted with the settings' envelope key (SecretBox); shown to the user only at creation/rotation.
        Column("secret_ciphertext", Text, nullable=False),
        Column("previous_secret_ciphertext", Text),
        Column("previous_secret_expires_at", DateTime(timezone=True)),
        Column("active", Boolean, nullable=False, server_default=text("true")),
        Column("disabled_reason", Text),
        Column("disabled_at", DateTime(timezone=True)),
        Column("deleted_at", DateTime(timezone=True)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    delivery = Table(
        "webhook_delivery",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("webhook_id", String(64), nullable=False, unique=True),
        Column("subscription_id", String(64), ForeignKey("webhook_subscription.id"), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("lead_id", String(64), nullable=False, index=True),
        # The exact bytes signed and sent, so every retry carries the same body and signature base.
        Column("payload", Text, nullable=False),
        Column("correlation_id", String(64)),
        Column("lead_captured_at", DateTime(timezone=True)),
        Column("status", String(16), nullable=False, server_default=text("'pending'")),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("replays", Integer, nullable=False, server_default=text("0")),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Set while a dispatcher sends the row (next_attempt_at is pushed to the same time, so a
        # dispatcher that dies mid-send leaves a row that becomes due again by itself).
        Column("leased_until", DateTime(timezone=True)),
        Column("last_attempt_at", DateTime(timezone=True)),
        Column("last_status_code", Integer),
        Column("last_error", Text),
        Column("delivered_at", DateTime(timezone=True)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_webhook_delivery_subscription_id_created_at", "subscription_id", "created_at"),
        *_revision_2_indexes(),
    )
    attempt = Table(
        "webhook_attempt",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("delivery_id", BigInteger, ForeignKey("webhook_delivery.id", ondelete="CASCADE"),
               nullable=False, index=True),
        Column("attempt", Integer, nullable=False),
        Column("attempted_at", DateTime(timezone=True), nullable=False),
        Column("status_code", Integer),
        Column("error", Text),
        Column("duration_ms", Float, nullable=False),
        Column("outcome", String(16), nullable=False),
        Column("next_attempt_at", DateTime(timezone=True)),
    )
    return WebhookTables(subscription, delivery, attempt)


_tables = define_webhook_tables(MetaData(naming_convention=NAMING_CONVENTION))
subscription_table = _tables.subscription
delivery_table = _tables.delivery
attempt_table = _tables.attempt


def create_webhook_tables(op: Operations) -> None:
    """Called from a service's first migration, after ``create_platform_tables(op)``; the later
    revisions' steps (``upgrade_webhook_tables_2``) follow in the service's later revisions.

    The DDL is spelled out as it was at that revision: a change arrives as a new step, never by
    rewriting this one (databases made before this was frozen match it too).
    """
    op.create_table(
        "webhook_subscription",
        Column("id", String(64), primary_key=True),
        Column("url", Text, nullable=False),
        Column("description", Text),
        Column("event_types", ARRAY(String(100)), nullable=False),
        Column("secret", Text, nullable=False),
        Column("previous_secret", Text),
        Column("previous_secret_expires_at", DateTime(timezone=True)),
        Column("active", Boolean, nullable=False, server_default=text("true")),
        Column("disabled_reason", Text),
        Column("disabled_at", DateTime(timezone=True)),
        Column("deleted_at", DateTime(timezone=True)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("id", name="pk_webhook_subscription"),
    )
    op.create_table(
        "webhook_delivery",
        Column("id", BigInteger, autoincrement=True),
        Column("webhook_id", String(64), nullable=False),
        Column("subscription_id", String(64), nullable=False),
        Column("event_type", String(100), nullable=False),
        Column("lead_id", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("correlation_id", String(64)),
        Column("lead_captured_at", DateTime(timezone=True)),
        Column("status", String(16), nullable=False, server_default=text("'pending'")),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("replays", Integer, nullable=False, server_default=text("0")),
        Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("last_attempt_at", DateTime(timezone=True)),
        Column("last_status_code", Integer),
        Column("last_error", Text),
        Column("delivered_at", DateTime(timezone=True)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("id", name="pk_webhook_delivery"),
        UniqueConstraint("webhook_id", name="uq_webhook_delivery_webhook_id"),
        ForeignKeyConstraint(["subscription_id"], ["webhook_subscription.id"],
                             name="fk_webhook_delivery_subscription_id_webhook_subscription"),
    )
    op.create_index("ix_webhook_delivery_lead_id", "webhook_delivery", ["lead_id"])
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["next_attempt_at"],
                    postgresql_where=text("status = 'pending'"))
    op.create_index("ix_webhook_delivery_subscription_id_created_at", "webhook_delivery",
                    ["subscription_id", "created_at"])
    op.create_table(
        "webhook_attempt",
        Column("id", BigInteger, autoincrement=True),
        Column("delivery_id", BigInteger, nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("attempted_at", DateTime(timezone=True), nullable=False),
        Column("status_code", Integer),
        Column("error", Text),
        Column("duration_ms", Float, nullable=False),
        Column("outcome", String(16), nullable=False),
        Column("next_attempt_at", DateTime(timezone=True)),
        PrimaryKeyConstraint("id", name="pk_webhook_attempt"),
        ForeignKeyConstraint(["delivery_id"], ["webhook_delivery.id"], ondelete="CASCADE",
                             name="fk_webhook_attempt_delivery_id_webhook_delivery"),
    )
    op.create_index("ix_webhook_attempt_delivery_id", "webhook_attempt", ["delivery_id"])


def upgrade_webhook_tables_2(op: Operations) -> None:
    """Signing secrets encrypted at rest (existing plaintext ones encrypted here, with the key in
    ``context.config.attributes["webhook_secret_box"]``), the send lease, the per-subscription claim
    and per-lead order indexes."""
    op.alter_column("webhook_subscription", "secret", new_column_name="secret_ciphertext")
    op.alter_column("webhook_subscription", "previous_secret", new_column_name="previous_secret_ciphertext")
    bind = op.get_bind()
    rows = bind.execute(
        text("SELECT id, secret_ciphertext, previous_secret_ciphertext FROM webhook_subscription")
    ).all()
    if rows:
        box = _migration_box()
        for row in rows:
            bind.execute(
                text("UPDATE webhook_subscription SET secret_ciphertext = :secret,"
                     " previous_secret_ciphertext = :previous WHERE id = :id"),
                {"id": row.id, "secret": box.encrypt(row.secret_ciphertext),
                 "previous": None if row.previous_secret_ciphertext is None
                 else box.encrypt(row.previous_secret_ciphertext)},
            )
    op.add_column("webhook_delivery", Column("leased_until", DateTime(timezone=True)))
    op.drop_index("ix_webhook_delivery_due", table_name="webhook_delivery")
    for index in _revision_2_indexes():
        op.create_index(index.name or "", "webhook_delivery", [str(c) for c in index.expressions],
                        postgresql_where=index.dialect_options["postgresql"]["where"])


def downgrade_webhook_tables_2(op: Operations) -> None:
    """Undo ``upgrade_webhook_tables_2``: the secrets go back to plaintext (with the same key)."""
    bind = op.get_bind()
    rows = bind.execute(
        text("SELECT id, secret_ciphertext, previous_secret_ciphertext FROM webhook_subscription")
    ).all()
    if rows:
        box = _migration_box()
        for row in rows:
            bind.execute(
                text("UPDATE webhook_subscription SET secret_ciphertext = :secret,"
                     " previous_secret_ciphertext = :previous WHERE id = :id"),
                {"id": row.id, "secret": box.decrypt(row.secret_ciphertext),
                 "previous": None if row.previous_secret_ciphertext is None
                 else box.decrypt(row.previous_secret_ciphertext)},
            )
    for index in _revision_2_indexes():
        op.drop_index(index.name or "", table_name="webhook_delivery")
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["next_attempt_at"],
                    postgresql_where=text("status = 'pending'"))
    op.drop_column("webhook_delivery", "leased_until")
    op.alter_column("webhook_subscription", "secret_ciphertext", new_column_name="secret")
    op.alter_column("webhook_subscription", "previous_secret_ciphertext", new_column_name="previous_secret")


def _migration_box() -> SecretBox:
    box: SecretBox | None = context.config.attributes.get("webhook_secret_box")
    if box is None:
        raise RuntimeError("webhook secrets need the encryption key: run `python -m leadflow_<svc> migrate`")
    return box


def drop_webhook_tables(op: Operations) -> None:
    for table in ("webhook_attempt", "webhook_delivery", "webhook_subscription"):
        op.drop_table(table)


async def reencrypt_webhook_secrets(db: Database, box: SecretBox) -> int:
    """Move every subscription's secrets under the box's first key (after a key rotation); returns
    how many subscriptions changed. Rows already under the first key are left as they are."""
    changed = 0
    async with db.transaction() as session:
        rows = (await session.execute(
            select(subscription_table.c.id, subscription_table.c.secret_ciphertext,
                   subscription_table.c.previous_secret_ciphertext).with_for_update()
        )).all()
        for row in rows:
            secret = box.reencrypt(row.secret_ciphertext)
            previous = None if row.previous_secret_ciphertext is None else box.reencrypt(row.previous_secret_ciphertext)
            if secret is None and previous is None:
                continue
            values = {"secret_ciphertext": secret} if secret is not None else {}
            if previous is not None:
                values["previous_secret_ciphertext"] = previous
            await session.execute(update(subscription_table).where(subscription_table.c.id == row.id).values(**values))
            changed += 1
    return changed


# -- signing --------------------------------------------------------------------------------


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_webhook_id() -> str:
    # The spec forbids '.' in ids; a uuid's hex has none.
    return f"msg_{uuid.uuid4().hex}"


def signature_header(signing_secrets: Sequence[str], webhook_id: str, timestamp: datetime, body: str) -> str:
    """``v1,<sig>`` for each secret, space-separated: during a rotation both keys sign."""
    return " ".join(Webhook(s).sign(webhook_id, timestamp, body) for s in signing_secrets)


def signed_headers(
    signing_secrets: Sequence[str], webhook_id: str, timestamp: datetime, body: str
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": f"LeadFlow-Webhooks/{VERSION}",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(signing_secrets, webhook_id, timestamp, body),
    }


def active_secrets(secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime) -> list[str]:
    if previous and previous_expires_at is not None and previous_expires_at > now:
        return [secret, previous]
    return [secret]


# -- retry policy (pure) --------------------------------------------------------------------


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


# -- enqueueing -----------------------------------------------------------------------------


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
) -> list[str]:
    """Queue ``event_type`` for every subscription to it, inside the caller's transaction: pending for
    an active subscription, held for a disabled one (sent once it is enabled again).

    ``extra`` adds top-level fields beside type/timestamp/data (e.g. a chat-readable ``text``).
    Returns the webhook ids (one per subscription). The dispatcher is woken at commit.
    """
    conn = await driver_connection(session)
    # One round trip: routing's transactions serialize, so each statement per lead is a wait for
    # every lead behind it. The ids have new_webhook_id's form; the notify is folded per transaction.
    rows = await conn.fetch(
        "WITH subscriber AS (SELECT id, active FROM webhook_subscription WHERE deleted_at IS NULL "
        "AND event_types && $1::varchar[]), "
        "queued AS (INSERT INTO webhook_delivery (webhook_id, subscription_id, event_type, lead_id, payload, "
        "correlation_id, lead_captured_at, next_attempt_at, created_at, status) "
        "SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), id, $2, $3, $4, $5, $6, $7, $7, "
        "CASE WHEN active THEN 'pending' ELSE 'held' END FROM subscriber "
        "ORDER BY id RETURNING webhook_id, subscription_id) "
        "SELECT webhook_id, pg_notify($8, '') FROM queued ORDER BY subscription_id",
        subscription_patterns(event_type), event_type, lead_id, webhook_payload(event_type, data, now, extra),
        correlation_id, lead_captured_at, now, WEBHOOK_CHANNEL,
    )
    return [row["webhook_id"] for row in rows]


# -- dispatching ----------------------------------------------------------------------------


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "leadflow_webhook_deliveries_total", "Webhook delivery attempts, by outcome (delivered|failed|dead)",
            ["service", "outcome"], registry=registry,
        )
        self.duration = Histogram(
            "leadflow_webhook_delivery_duration_seconds", "Time of one webhook HTTP attempt",
            ["service"], buckets=DELIVERY_DURATION_BUCKETS, registry=registry,
        )


@dataclass(frozen=True)
class _Claimed:
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
    # None when no configured encryption key opens the subscription's secret: nothing is sent.
    secrets: list[str] | None


@dataclass(frozen=True)
class _Attempt:
    row: _Claimed
    outcome: AttemptOutcome
    step: NextStep
    elapsed: float
    at: datetime

    @property
    def number(self) -> int:
        return self.row.attempts + 1


def _clip(text: str, limit: int = FAILURE_BODY_BYTES) -> str:
    return text.encode()[:limit].decode(errors="ignore")


async def _read_prefix(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of the body: a receiver cannot make us buffer more."""
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > limit:
            break
    return bytes(data[:limit])


# One statement records an attempt: the delivery's new state (held instead of pending when its
# subscription was disabled meanwhile), its attempt row only if the state was still ours (a replay
# or another dispatcher may have recorded it; theirs wins), and on a success the subscription's
# backlog made due at once: the receiver is back, nothing should wait out its backoff.
_RECORD = (
    "WITH updated AS ("
    " UPDATE webhook_delivery SET status = CASE WHEN $3 = 'pending' AND NOT EXISTS (SELECT 1 FROM"
    " webhook_subscription s WHERE s.id = subscription_id AND s.active AND s.deleted_at IS NULL) THEN 'held'"
    " ELSE $3 END, attempts = $4, next_attempt_at = $5, leased_until = NULL, last_attempt_at = $6,"
    " last_status_code = $7, last_error = $8, delivered_at = $9"
    " WHERE id = $1 AND status = 'pending' AND attempts = $2 RETURNING id, subscription_id, status),"
    " woken AS ("
    " UPDATE webhook_delivery w SET next_attempt_at = $6 FROM updated u"
    " WHERE u.status = 'delivered' AND w.subscription_id = u.subscription_id AND w.status = 'pending'"
    " AND w.next_attempt_at > $6 AND w.leased_until IS NULL)"
    " INSERT INTO webhook_attempt (delivery_id, attempt, attempted_at, status_code, error, duration_ms,"
    " outcome, next_attempt_at)"
    " SELECT id, $4, $6, $7, $8, $10, $11, $12 FROM updated RETURNING delivery_id"
)

# Each active subscription's due rows in turn (at most its share, so one receiver's backlog cannot
# crowd out the others), skipping a row while an earlier one of the same lead to the same
# subscription is still open (per-lead order).
_CLAIM = (
    "SELECT d.id, d.webhook_id, d.subscription_id, d.event_type, d.lead_id, d.payload, d.correlation_id,"
    " d.lead_captured_at, d.attempts, s.url, s.secret_ciphertext, s.previous_secret_ciphertext,"
    " s.previous_secret_expires_at"
    " FROM webhook_subscription s CROSS JOIN LATERAL ("
    " SELECT * FROM webhook_delivery d WHERE d.subscription_id = s.id AND d.status = 'pending'"
    " AND d.next_attempt_at <= $1 AND d.id <> ALL($5::bigint[]) AND NOT EXISTS (SELECT 1 FROM webhook_delivery e"
    " WHERE e.subscription_id = d.subscription_id AND e.lead_id = d.lead_id AND e.id < d.id"
    " AND e.status IN ('pending', 'held'))"
    " ORDER BY d.next_attempt_at, d.id LIMIT $3 FOR UPDATE SKIP LOCKED) d"
    " WHERE s.active AND s.deleted_at IS NULL AND s.id <> ALL($4::varchar[])"
    " ORDER BY d.next_attempt_at, d.id LIMIT $2"
)


class WebhookDispatcher:
    """Sends due deliveries; any number of replicas may run (rows are claimed, not shared).

    Each claimed row is sent by its own task and recorded as soon as it ends; a subscription has at
    most ``webhook_subscription_concurrency`` sends in flight, all of them at most ``webhook_concurrency``.
    """

    def __init__(
        self,
        settings: WebhookSettings,
        db: Database,
        http: httpx.AsyncClient,
        metrics: WebhookMetrics,
        outbox: Outbox | None = None,
        clock: Clock | None = None,
        box: SecretBox | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.http = http
        self.metrics = metrics
        self.outbox = outbox or Outbox(settings.topic_prefix)
        self.clock = clock or SystemClock()
        self.box = box or settings.secret_box()
        self.service = settings.service_name
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: dict[str, int] = {}
        # Rows this dispatcher is sending or has yet to record: never claimed again meanwhile, even if
        # the clock passes their lease (an injected clock can jump).
        self._sending_ids: set[int] = set()
        self._sending: set[asyncio.Task[None]] = set()
        self._finished: list[_Attempt] = []
        # ciphertext -> secret: each stored secret is decrypted once, not per delivery.
        self._plaintext: dict[str, str] = {}

    @property
    def lease(self) -> timedelta:
        # A claimed row is hidden this long; if this process dies mid-send, it becomes due again.
        return timedelta(seconds=self.settings.webhook_timeout_seconds + 30)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        listener = await self._listen()
        try:
            while not self._stopping.is_set():
                # Cleared before the round: a NOTIFY or a finished send during the round wakes the next one at once.
                self._wake.clear()
                try:
                    await self._record_finished()
                    more_due = await self._start_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # An outage is one line a round; anything else deserves its stack trace.
                    log.warning("webhook dispatch round failed (%s: %s); retrying", type(exc).__name__, exc,
                                exc_info=not is_infrastructure_error(exc))
                    await self._sleep(1.0)
                    continue
                if more_due or self._wake.is_set():
                    continue
                idle = await self._idle_wait()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), idle)
                if listener is None or listener.is_closed():
                    # Lost with a database restart: listen again, or wake-ups would wait for the poll.
                    listener = await self._listen()
        finally:
            for task in list(self._sending):
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._record_finished()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            conn: asyncpg.Connection = await asyncpg.connect(asyncpg_dsn(self.db.url))
            await conn.add_listener(WEBHOOK_CHANNEL, lambda *_: self._wake.set())
            return conn
        except Exception as exc:
            log.warning("webhook dispatcher cannot LISTEN (%s: %s); polling until it can", type(exc).__name__, exc)
            return None

    async def _idle_wait(self) -> float:
        """Sleep until the next due row (bounded by the poll interval)."""
        poll = self.settings.webhook_poll_interval_seconds
        try:
            async with self.db.transaction() as session:
                # Rows of disabled subscriptions are held, not pending; each subscription's next row
                # comes from its own index.
                due = await (await driver_connection(session)).fetchval(
                    "SELECT min(x.next_attempt_at) FROM webhook_subscription s CROSS JOIN LATERAL ("
                    " SELECT d.next_attempt_at FROM webhook_delivery d WHERE d.subscription_id = s.id"
                    " AND d.status = 'pending' ORDER BY d.next_attempt_at LIMIT 1) x"
                    " WHERE s.active AND s.deleted_at IS NULL"
                )
        except Exception:
            return poll
        if due is None:
            return poll
        wait = (due - self.clock.now()).total_seconds()
        # A row already due that the last claim left is waiting for a send in flight (its
        # subscription's share, or an earlier delivery of its lead): that send's end wakes us.
        return poll if wait <= 0 else min(wait, poll)

    async def _start_due(self) -> bool:
        """Claim what is due and free to go, each row sent by its own task; True when the claim was
        cut short by the batch size (more may be due at once)."""
        free = self.settings.webhook_concurrency - len(self._sending)
        limit = min(free, self.settings.webhook_batch_size)
        if limit <= 0:
            return False
        claimed = await self._claim(limit)
        for row in claimed:
            self._in_flight[row.subscription_id] = self._in_flight.get(row.subscription_id, 0) + 1
            self._sending_ids.add(row.id)
            task = asyncio.create_task(self._deliver(row), name=f"webhook-{row.webhook_id}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        return len(claimed) >= limit and limit < free

    async def _deliver(self, row: _Claimed) -> None:
        try:
            # Not `self._finished.append(await ...)`: that would take the list before the await, and
            # the loop swaps it for a fresh one while sends are in flight.
            attempt = await self._attempt(row)
            self._finished.append(attempt)
        except asyncio.CancelledError:
            self._sending_ids.discard(row.id)
            raise
        except Exception:
            # The lease runs out and the row is sent again with the same webhook-id.
            self._sending_ids.discard(row.id)
            log.exception("sending webhook %s failed unexpectedly", row.webhook_id)
        finally:
            left = self._in_flight.get(row.subscription_id, 1) - 1
            if left > 0:
                self._in_flight[row.subscription_id] = left
            else:
                self._in_flight.pop(row.subscription_id, None)
            self._wake.set()

    async def _record_finished(self) -> None:
        if self._finished:
            finished, self._finished = self._finished, []
            try:
                await self._record_all(finished)
            finally:
                self._sending_ids.difference_update(a.row.id for a in finished)

    async def _claim(self, limit: int) -> list[_Claimed]:
        now = self.clock.now()
        share = self.settings.webhook_subscription_concurrency
        saturated = [sub for sub, n in self._in_flight.items() if n >= share]
        async with self.db.transaction() as session:
            conn = await driver_connection(session)
            rows = await conn.fetch(_CLAIM, now, limit, share, saturated, list(self._sending_ids))
            taken: dict[str, int] = {}
            kept = []
            for r in rows:
                sub = r["subscription_id"]
                if self._in_flight.get(sub, 0) + taken.get(sub, 0) < share:
                    taken[sub] = taken.get(sub, 0) + 1
                    kept.append(r)
            if not kept:
                return []
            # Rows left out stay due; their row locks end with this transaction.
            lease_end = now + self.lease
            await conn.execute(
                "UPDATE webhook_delivery SET next_attempt_at = $1, leased_until = $1 WHERE id = ANY($2::bigint[])",
                lease_end, [r["id"] for r in kept],
            )
        return [
            _Claimed(
                id=r["id"], webhook_id=r["webhook_id"], subscription_id=r["subscription_id"],
                event_type=r["event_type"], lead_id=r["lead_id"], payload=r["payload"],
                correlation_id=r["correlation_id"], lead_captured_at=r["lead_captured_at"], attempts=r["attempts"],
                url=r["url"], secrets=self._signing_secrets(r, now),
            )
            for r in kept
        ]

    def _signing_secrets(self, r: asyncpg.Record, now: datetime) -> list[str] | None:
        try:
            current = self._decrypt(r["secret_ciphertext"])
            previous = r["previous_secret_ciphertext"]
            return active_secrets(current, None if previous is None else self._decrypt(previous),
                                  r["previous_secret_expires_at"], now)
        except ValueError:
            log.error("no configured encryption key opens the signing secret of webhook subscription %s",
                      r["subscription_id"])
            return None

    def _decrypt(self, ciphertext: str) -> str:
        plaintext = self._plaintext.get(ciphertext)
        if plaintext is None:
            plaintext = self.box.decrypt(ciphertext)
            if len(self._plaintext) >= 10_000:
                self._plaintext.clear()
            self._plaintext[ciphertext] = plaintext
        return plaintext

    async def _send(self, row: _Claimed) -> tuple[AttemptOutcome, float]:
        if row.secrets is None:
            return AttemptOutcome(None, "not sent: no configured encryption key opens the signing secret"), 0.0
        # The signature's timestamp is the wall clock even under an injected clock: receivers reject
        # timestamps more than five minutes from their own time.
        headers = signed_headers(row.secrets, row.webhook_id, datetime.now(UTC), row.payload)
        timeout = self.settings.webhook_timeout_seconds
        started = time.perf_counter()
        try:
            # One deadline for the whole exchange: a receiver that drips its answer cannot hold a slot.
            async with (
                asyncio.timeout(timeout),
                self.http.stream("POST", row.url, content=row.payload.encode(), headers=headers,
                                 timeout=timeout) as response,
            ):
                ok = 200 <= response.status_code < 300
                body = await _read_prefix(response, SUCCESS_BODY_BYTES if ok else FAILURE_BODY_BYTES)
        except Exception as exc:
            return AttemptOutcome(None, _clip(f"{type(exc).__name__}: {exc}")), time.perf_counter() - started
        elapsed = time.perf_counter() - started
        error = None if ok else f"HTTP {response.status_code}: {_clip(body.decode(errors='replace'))}"
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
        return AttemptOutcome(response.status_code, error, retry_after), elapsed

    async def _attempt(self, row: _Claimed) -> _Attempt:
        outcome, elapsed = await self._send(row)
        self.metrics.duration.labels(self.service).observe(elapsed)
        now = self.clock.now()
        step = next_step(
            outcome, row.attempts + 1, now, self.settings.webhook_retry_schedule(),
            jitter_ratio=self.settings.webhook_jitter_ratio,
            max_retry_after=self.settings.webhook_max_retry_after_seconds,
        )
        return _Attempt(row, outcome, step, elapsed, now)

    async def _record_all(self, attempts: Sequence[_Attempt]) -> None:
        """Record finished attempts in one transaction (one commit for all), or one by one if that
        fails, so one bad row cannot make the others be sent again. While the database is
        unreachable the outcomes wait for it: a delivery already made must not be made again."""
        try:
            recorded = await self._record_through_outages(attempts)
        except Exception:
            if len(attempts) == 1:
                # The lease expires and the row is sent again with the same webhook-id.
                log.exception("could not record webhook outcome for %s", attempts[0].row.webhook_id)
                return
            log.warning("recording %d webhook outcomes together failed; recording them one by one",
                        len(attempts), exc_info=True)
            for attempt in attempts:
                await self._record_all([attempt])
            return
        for attempt, was_recorded in zip(attempts, recorded, strict=True):
            if was_recorded:
                self._report(attempt)

    async def _record_through_outages(self, attempts: Sequence[_Attempt]) -> list[bool]:
        backoff = 0.2
        while True:
            try:
                async with self.db.transaction() as session:
                    return [await self._record(session, attempt) for attempt in attempts]
            except Exception as exc:
                if not is_infrastructure_error(exc) or self._stopping.is_set():
                    raise
                log.warning("recording %d webhook outcomes waits on the database (%s: %s); retrying in %.1fs",
                            len(attempts), type(exc).__name__, exc, backoff)
                await self._sleep(backoff + random.uniform(0, backoff))
                backoff = min(backoff * 2, 5.0)

    def _report(self, attempt: _Attempt) -> None:
        row, step, outcome = attempt.row, attempt.step, attempt.outcome
        metric_outcome = "failed" if step.status == "pending" else step.status
        self.metrics.deliveries.labels(self.service, metric_outcome).inc()
        if step.status == "dead":
            log.error("webhook %s to subscription %s is dead after %d attempts: %s",
                      row.webhook_id, row.subscription_id, attempt.number, outcome.error)
        elif step.status == "pending":
            log.info("webhook %s attempt %d failed (%s); next at %s",
                     row.webhook_id, attempt.number, outcome.error, step.next_attempt_at)

    async def _record(self, session: AsyncSession, attempt: _Attempt) -> bool:
        """Write one attempt's outcome; False when someone else recorded this delivery meanwhile."""
        row, outcome, step, now = attempt.row, attempt.outcome, attempt.step, attempt.at
        conn = await driver_connection(session)
        updated = await conn.fetchval(
            _RECORD,
            row.id, row.attempts, step.status, attempt.number, step.next_attempt_at or now, now,
            outcome.status_code, outcome.error, now if step.status == "delivered" else None,
            attempt.elapsed * 1000, "failed" if step.status == "pending" else step.status, step.next_attempt_at,
        )
        if updated is None:
            return False
        if step.disable_subscription:
            await disable_subscription(conn, row.subscription_id, "endpoint answered 410 Gone", now)
            log.warning("webhook subscription %s disabled: its endpoint answered 410 Gone; its deliveries are held "
                        "until it is enabled again", row.subscription_id)
        if step.status in ("delivered", "dead") and self.settings.webhook_emit_delivered_events:
            data = LeadDelivered(
                lead_id=row.lead_id, webhook_id=row.webhook_id, subscription_id=row.subscription_id,
                event_type_delivered=row.event_type, status=step.status, attempt=attempt.number,
                status_code=outcome.status_code, error=outcome.error, at=now,
            )
            await self.outbox.add(
                session,
                new_event(data, source=self.service, subject=row.lead_id, correlation_id=row.correlation_id,
                          lead_captured_at=row.lead_captured_at, time=now),
            )
        return True

    async def _sleep(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True


async def disable_subscription(conn: asyncpg.Connection, subscription_id: str, reason: str, now: datetime) -> None:
    """Disable a subscription and hold its pending deliveries (those in flight are held as they end)."""
    await conn.execute(
        "WITH disabled AS (UPDATE webhook_subscription SET active = false, disabled_reason = $2, disabled_at = $3,"
        " updated_at = $3 WHERE id = $1 RETURNING id)"
        " UPDATE webhook_delivery SET status = 'held' WHERE subscription_id IN (SELECT id FROM disabled)"
        " AND status = 'pending' AND (leased_until IS NULL OR leased_until <= $3)",
        subscription_id, reason, now,
    )


async def enable_subscription(conn: asyncpg.Connection, subscription_id: str, now: datetime) -> int:
    """Enable a subscription; its held deliveries become due now (in their per-lead order). Returns how many."""
    released: int = await conn.fetchval(
        "WITH enabled AS (UPDATE webhook_subscription SET active = true, disabled_reason = NULL, disabled_at = NULL,"
        " updated_at = $2 WHERE id = $1 RETURNING id),"
        " released AS (UPDATE webhook_delivery SET status = 'pending', next_attempt_at = $2, leased_until = NULL"
        " WHERE subscription_id IN (SELECT id FROM enabled) AND status = 'held' RETURNING id)"
        " SELECT count(*) FROM released",
        subscription_id, now,
    )
    return released


def webhook_metrics(app: FastAPI) -> WebhookMetrics:
    """The app's webhook metrics, registered once even if the lifespan runs again."""
    existing: WebhookMetrics | None = getattr(app.state, "webhook_metrics", None)
    if existing is None:
        existing = WebhookMetrics(app.state.metrics.registry)
        app.state.webhook_metrics = existing
    return existing


async def run_webhook_dispatcher(app: FastAPI) -> None:
    """Background task for ``create_service_app(background=[...])``; also at ``app.state.webhooks``.

    Sends through its own client that checks every connection against the egress policy."""
    state = app.state
    settings: WebhookSettings = state.settings
    http = guarded_client(settings.egress_policy(),
                          limits=httpx.Limits(max_connections=settings.webhook_concurrency * 2,
                                              max_keepalive_connections=settings.webhook_concurrency))
    dispatcher = WebhookDispatcher(settings, state.db, http, webhook_metrics(app), state.outbox, state.clock)
    state.webhooks = dispatcher
    try:
        await dispatcher.run()
    finally:
        dispatcher.stop()
        await http.aclose()


# -- admin API ------------------------------------------------------------------------------


class SubscriptionCreate(BaseModel):
    url: str = Field(max_length=2048, examples=["https://crm.example.com/hooks/leadflow"],
                     description="https; it may not resolve to a loopback, private, link-local, multicast or "
                                 "reserved address")
    event_types: list[str] = Field(min_length=1, examples=[["lead.routed"]])
    description: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parse_url(value)
        return value


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"description": "CRM production endpoint", "active": True}, {"event_types": ["*"]}]})

    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1)
    description: str | None = None
    active: bool | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else SubscriptionCreate._http_url(value)


class SubscriptionPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "sub_4e1f0c9a7b2d4c6e8f10", "url": "https://crm.example.com/hooks/leadflow",
        "event_types": ["lead.routed"], "description": "CRM production endpoint", "active": True,
        "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z"}]})

    id: str
    url: str
    event_types: list[str]
    description: str | None = None
    active: bool
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    previous_secret_expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionPublic):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "sub_4e1f0c9a7b2d4c6e8f10", "url": "https://crm.example.com/hooks/leadflow",
        "event_types": ["lead.routed"], "active": True, "created_at": "2026-11-23T09:00:00Z",
        "updated_at": "2026-11-23T09:00:00Z", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]})

    secret: str = Field(description="The signing secret; shown only in this response")


class SecretRotate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_seconds": 86400}]})

    overlap_seconds: float | None = Field(
        default=None, ge=0, le=366 * 86400,
        description="How long the old secret keeps signing too (default from settings), at most a year"
    )


class SecretRotated(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "subscription_id": "sub_4e1f0c9a7b2d4c6e8f10", "secret": "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "previous_secret_expires_at": "2026-11-24T09:00:00Z"}]})

    subscription_id: str
    secret: str = Field(description="The new signing secret; shown only in this response")
    previous_secret_expires_at: datetime


DELIVERY_EXAMPLE: dict[str, Any] = {
    "webhook_id": "msg_9b1deb4d3b7d4bad9bdd2b0d7b3dcb6d", "subscription_id": "sub_4e1f0c9a7b2d4c6e8f10",
    "event_type": "lead.routed", "lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4", "status": "pending",
    "attempts": 1, "replays": 0, "next_attempt_at": "2026-11-23T09:00:35Z", "last_attempt_at": "2026-11-23T09:00:05Z",
    "last_status_code": 503, "last_error": "HTTP 503: upstream unavailable", "created_at": "2026-11-23T09:00:04Z",
}


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DELIVERY_EXAMPLE]})

    webhook_id: str
    subscription_id: str
    event_type: str
    lead_id: str
    status: str
    attempts: int
    replays: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    created_at: datetime


class AttemptPublic(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    outcome: str
    next_attempt_at: datetime | None


class DeliveryDetail(DeliveryPublic):
    # The payload as sent (Standard Webhooks body); its data, cut short here, is the service's.
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **DELIVERY_EXAMPLE,
        "payload": {"type": "lead.routed", "timestamp": "2026-11-23T09:00:04Z",
                    "data": {"lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4"}},
        "attempt_log": [{"attempt": 1, "attempted_at": "2026-11-23T09:00:05Z", "status_code": 503,
                         "error": "HTTP 503: upstream unavailable", "duration_ms": 41.7, "outcome": "failed",
                         "next_attempt_at": "2026-11-23T09:00:35Z"}]}]})

    payload: dict[str, Any]
    attempt_log: list[AttemptPublic]


class BulkReplay(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"statuses": ["dead"], "since": "2026-11-23T00:00:00Z"}]})

    statuses: list[Literal["dead", "delivered"]] = Field(default_factory=lambda: ["dead"])  # type: ignore[arg-type]
    since: datetime | None = None
    lead_id: str | None = None


class BulkReplayed(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"replayed": 12}]})

    replayed: int


def _delivery_public(row: Any) -> DeliveryPublic:
    public = DeliveryPublic.model_validate(row, from_attributes=True)
    if public.status != "pending":
        public.next_attempt_at = None
    return public


def webhook_admin_router(
    *,
    read_scope: str = "webhooks:read",
    write_scope: str = "webhooks:write",
    prefix: str = "/v1/admin/webhooks",
) -> APIRouter:
    """Subscriptions (secret shown once, rotation), the delivery log and replay."""
    router = APIRouter(prefix=prefix, tags=["webhooks"])
    readable = [Depends(require_scope(read_scope))]
    writable = [Depends(require_scope(write_scope))]
    s, d = subscription_table, delivery_table

    def now_of(request: Request) -> datetime:
        clock: Clock = request.app.state.clock
        return clock.now()

    async def load(session: AsyncSession, subscription_id: str) -> Any:
        row = (
            await session.execute(select(s).where(s.c.id == subscription_id, s.c.deleted_at.is_(None)))
        ).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook subscription '{subscription_id}'")
        return row

    def wake(request: Request) -> None:
        dispatcher: WebhookDispatcher | None = getattr(request.app.state, "webhooks", None)
        if dispatcher is not None:
            dispatcher.wake()

    async def check_destination(request: Request, url: str) -> None:
        settings: WebhookSettings = request.app.state.settings
        refusal = await destination_refusal(parse_url(url), settings.egress_policy())
        if refusal is not None:
            error = FieldError(field="url", code="forbidden_destination", message=f"url {refusal}")
            raise HTTPException(422, detail={"detail": "The request is invalid; see errors.",
                                              "errors": [error.model_dump()]})

    @router.post("/subscriptions", status_code=201, response_model=SubscriptionCreated, dependencies=writable,
                 summary="Subscribe a URL to event types; the signing secret is shown only here")
    async def create_subscription(body: SubscriptionCreate, request: Request) -> SubscriptionCreated:
        await check_destination(request, body.url)
        now = now_of(request)
        secret = new_secret()
        box: SecretBox = request.app.state.settings.secret_box()
        async with request.app.state.db.transaction() as session:
            row = (
                await session.execute(
                    insert(s)
                    .values(id=f"sub_{uuid.uuid4().hex[:20]}", url=body.url, description=body.description,
                            event_types=sorted(set(body.event_types)), secret_ciphertext=box.encrypt(secret),
                            created_at=now, updated_at=now)
                    .returning(*s.c)
                )
            ).one()
        return SubscriptionCreated(**SubscriptionPublic.model_validate(row, from_attributes=True).model_dump(),
                                   secret=secret)

    @router.get("/subscriptions", response_model=list[SubscriptionPublic], dependencies=readable)
    async def list_subscriptions(request: Request) -> list[SubscriptionPublic]:
        async with request.app.state.db.transaction() as session:
            rows = (await session.execute(select(s).where(s.c.deleted_at.is_(None)).order_by(s.c.created_at))).all()
        return [SubscriptionPublic.model_validate(r, from_attributes=True) for r in rows]

    @router.get("/subscriptions/{subscription_id}", response_model=SubscriptionPublic, dependencies=readable)
    async def get_subscription(subscription_id: str, request: Request) -> SubscriptionPublic:
        async with request.app.state.db.transaction() as session:
            row = await load(session, subscription_id)
        return SubscriptionPublic.model_validate(row, from_attributes=True)

    @router.patch("/subscriptions/{subscription_id}", response_model=SubscriptionPublic, dependencies=writable,
                  summary="Change a subscription; `active: false` holds its deliveries, `active: true` (also after "
                          "a 410) sends the held ones")
    async def update_subscription(
        subscription_id: str, body: SubscriptionUpdate, request: Request
    ) -> SubscriptionPublic:
        now = now_of(request)
        changes: dict[str, Any] = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
        if "url" in changes:
            await check_destination(request, changes["url"])
        if "event_types" in changes:
            changes["event_types"] = sorted(set(changes["event_types"]))
        active = changes.pop("active", None)
        async with request.app.state.db.transaction() as session:
            current = await load(session, subscription_id)
            if changes:
                await session.execute(update(s).where(s.c.id == subscription_id).values(**changes, updated_at=now))
            conn = await driver_connection(session)
            if active is True and not current.active:
                await enable_subscription(conn, subscription_id, now)
            elif active is False and current.active:
                await disable_subscription(conn, subscription_id, "disabled by an admin", now)
            row = await load(session, subscription_id)
        wake(request)
        return SubscriptionPublic.model_validate(row, from_attributes=True)

    @router.delete("/subscriptions/{subscription_id}", status_code=204, dependencies=writable)
    async def delete_subscription(subscription_id: str, request: Request) -> None:
        now = now_of(request)
        async with request.app.state.db.transaction() as session:
            await load(session, subscription_id)
            # Soft delete keeps the delivery log readable.
            await session.execute(
                update(s).where(s.c.id == subscription_id).values(deleted_at=now, active=False, updated_at=now)
            )

    @router.post("/subscriptions/{subscription_id}/rotate-secret", response_model=SecretRotated,
                 dependencies=writable,
                 summary="New secret; the old one keeps signing alongside it until the overlap ends")
    async def rotate_secret(subscription_id: str, request: Request, body: SecretRotate | None = None) -> SecretRotated:
        now = now_of(request)
        settings: WebhookSettings = request.app.state.settings
        overlap = (body.overlap_seconds if body and body.overlap_seconds is not None
                   else settings.webhook_secret_overlap_seconds)
        expires = now + timedelta(seconds=overlap)
        secret = new_secret()
        box: SecretBox = request.app.state.settings.secret_box()
        async with request.app.state.db.transaction() as session:
            current = await load(session, subscription_id)
            await session.execute(
                update(s).where(s.c.id == subscription_id).values(
                    secret_ciphertext=box.encrypt(secret), previous_secret_ciphertext=current.secret_ciphertext,
                    previous_secret_expires_at=expires, updated_at=now,
                )
            )
        return SecretRotated(subscription_id=subscription_id, secret=secret, previous_secret_expires_at=expires)

    @router.get("/deliveries", response_model=list[DeliveryPublic], dependencies=readable,
                summary="The delivery log, newest first")
    async def list_deliveries(
        request: Request,
        subscription_id: str | None = None,
        lead_id: str | None = None,
        delivery_status: DeliveryStatus | None = Query(default=None, alias="status"),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[DeliveryPublic]:
        conditions = []
        if subscription_id:
            conditions.append(d.c.subscription_id == subscription_id)
        if lead_id:
            conditions.append(d.c.lead_id == lead_id)
        if delivery_status:
            conditions.append(d.c.status == delivery_status)
        async with request.app.state.db.transaction() as session:
            rows = (
                await session.execute(
                    select(d).where(*conditions).order_by(d.c.created_at.desc(), d.c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [_delivery_public(r) for r in rows]

    @router.get("/deliveries/{webhook_id}", response_model=DeliveryDetail, dependencies=readable)
    async def get_delivery(webhook_id: str, request: Request) -> DeliveryDetail:
        async with request.app.state.db.transaction() as session:
            row = (await session.execute(select(d).where(d.c.webhook_id == webhook_id))).first()
            if row is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook delivery '{webhook_id}'")
            attempts = (
                await session.execute(
                    select(attempt_table).where(attempt_table.c.delivery_id == row.id).order_by(attempt_table.c.id)
                )
            ).all()
        return DeliveryDetail(
            **_delivery_public(row).model_dump(),
            payload=json.loads(row.payload),
            attempt_log=[AttemptPublic.model_validate(a, from_attributes=True) for a in attempts],
        )

    @router.post("/deliveries/{webhook_id}/replay", status_code=202, response_model=DeliveryPublic,
                 dependencies=writable, summary="Send a delivery again, with the same webhook-id")
    async def replay_delivery(webhook_id: str, request: Request) -> DeliveryPublic:
        now = now_of(request)
        async with request.app.state.db.transaction() as session:
            row = (
                await session.execute(
                    update(d).where(d.c.webhook_id == webhook_id)
                    .values(status="pending", attempts=0, replays=d.c.replays + 1, next_attempt_at=now,
                            leased_until=None)
                    .returning(*d.c)
                )
            ).first()
            if row is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no webhook delivery '{webhook_id}'")
        wake(request)
        return _delivery_public(row)

    @router.post("/subscriptions/{subscription_id}/replay", response_model=BulkReplayed, status_code=202,
                 dependencies=writable, summary="Replay a subscription's dead (or delivered) deliveries")
    async def replay_subscription(subscription_id: str, request: Request, body: BulkReplay | None = None
                                  ) -> BulkReplayed:
        body = body or BulkReplay()
        now = now_of(request)
        conditions = [d.c.subscription_id == subscription_id, d.c.status.in_(body.statuses)]
        if body.since is not None:
            conditions.append(d.c.created_at >= body.since)
        if body.lead_id is not None:
            conditions.append(d.c.lead_id == body.lead_id)
        async with request.app.state.db.transaction() as session:
            await load(session, subscription_id)
            result = await session.execute(
                update(d).where(*conditions)
                .values(status="pending", attempts=0, replays=d.c.replays + 1, next_attempt_at=now,
                            leased_until=None)
                .returning(d.c.id)
            )
            count = len(result.all())
        wake(request)
        return BulkReplayed(replayed=count)

    return router


__all__ = [
    "ALL_EVENT_TYPES",
    "AttemptOutcome",
    "NextStep",
    "WebhookDispatcher",
    "WebhookMetrics",
    "WebhookSettings",
    "WebhookTables",
    "active_secrets",
    "attempt_table",
    "create_webhook_tables",
    "define_webhook_tables",
    "delivery_table",
    "disable_subscription",
    "downgrade_webhook_tables_2",
    "drop_webhook_tables",
    "enable_subscription",
    "enqueue_webhook",
    "new_secret",
    "new_webhook_id",
    "next_step",
    "parse_retry_after",
    "reencrypt_webhook_secrets",
    "run_webhook_dispatcher",
    "signature_header",
    "signed_headers",
    "subscription_table",
    "upgrade_webhook_tables_2",
    "webhook_admin_router",
    "webhook_metrics",
    "webhook_payload",
]
