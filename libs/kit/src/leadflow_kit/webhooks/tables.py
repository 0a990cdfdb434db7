"""The webhook tables (subscriptions, deliveries, the attempt log) and the migration steps that make
them: ``define_webhook_tables`` puts them on a service's MetaData; ``create_webhook_tables`` in its first
migration, then ``upgrade_webhook_tables_2`` (and its downgrade) in a later revision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alembic import context
from alembic.operations import Operations
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
    text,
)

from leadflow_kit.db import NAMING_CONVENTION
from leadflow_kit.secretbox import SecretBox

# What a subscription may filter its deliveries on (columns ``filter_<name>``).
FILTER_PROPERTIES = ("tiers", "teams", "forms")


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


def _revision_4_indexes() -> list[Index]:
    return [
        # The rows waiting out a backoff after a failed attempt, which a success to their receiver makes due at
        # once. Few at any time, and only them: a backlog of fresh rows (a burst) is not read to find them.
        Index("ix_webhook_delivery_backed_off", "subscription_id", "next_attempt_at",
              postgresql_where=text("status = 'pending' AND attempts > 0")),
    ]


def define_webhook_tables(metadata: MetaData) -> WebhookTables:
    """Put the webhook tables on a service's MetaData (so Alembic knows them)."""
    return WebhookTables(_subscription(metadata), _delivery(metadata), _attempt(metadata))


def _subscription(metadata: MetaData) -> Table:
    return Table(
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
        *_revision_3_filter_columns(),
    )


def _revision_3_filter_columns() -> list[Column[list[str]]]:
    # NULL: no filter on that property; otherwise a delivery's value must be one of the list.
    return [Column(f"filter_{name}", ARRAY(String(100))) for name in FILTER_PROPERTIES]


def _delivery(metadata: MetaData) -> Table:
    return Table(
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
        *_revision_4_indexes(),
    )


def _attempt(metadata: MetaData) -> Table:
    return Table(
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
    _create_subscription_table(op)
    _create_delivery_table(op)
    _create_attempt_table(op)


def _create_subscription_table(op: Operations) -> None:
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


def _create_delivery_table(op: Operations) -> None:
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


def _create_attempt_table(op: Operations) -> None:
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
    _convert_secrets(op, lambda box: box.encrypt)
    op.add_column("webhook_delivery", Column("leased_until", DateTime(timezone=True)))
    op.drop_index("ix_webhook_delivery_due", table_name="webhook_delivery")
    for index in _revision_2_indexes():
        op.create_index(index.name or "", "webhook_delivery", [str(c) for c in index.expressions],
                        postgresql_where=index.dialect_options["postgresql"]["where"])


def downgrade_webhook_tables_2(op: Operations) -> None:
    """Undo ``upgrade_webhook_tables_2``: the secrets go back to plaintext (with the same key)."""
    _convert_secrets(op, lambda box: box.decrypt)
    for index in _revision_2_indexes():
        op.drop_index(index.name or "", table_name="webhook_delivery")
    op.create_index("ix_webhook_delivery_due", "webhook_delivery", ["next_attempt_at"],
                    postgresql_where=text("status = 'pending'"))
    op.drop_column("webhook_delivery", "leased_until")
    op.alter_column("webhook_subscription", "secret_ciphertext", new_column_name="secret")
    op.alter_column("webhook_subscription", "previous_secret_ciphertext", new_column_name="previous_secret")


def upgrade_webhook_tables_3(op: Operations) -> None:
    """Filters per subscription (tier, team, form), NULL where a subscription has none."""
    for column in _revision_3_filter_columns():
        op.add_column("webhook_subscription", column)


def downgrade_webhook_tables_3(op: Operations) -> None:
    for name in FILTER_PROPERTIES:
        op.drop_column("webhook_subscription", f"filter_{name}")


def upgrade_webhook_tables_4(op: Operations) -> None:
    """The index of rows waiting out a backoff (the record of a success probes it)."""
    for index in _revision_4_indexes():
        op.create_index(index.name or "", "webhook_delivery", [str(c) for c in index.expressions],
                        postgresql_where=index.dialect_options["postgresql"]["where"])


def downgrade_webhook_tables_4(op: Operations) -> None:
    for index in _revision_4_indexes():
        op.drop_index(index.name or "", table_name="webhook_delivery")


def _convert_secrets(op: Operations, conversion: Callable[[SecretBox], Callable[[str], str]]) -> None:
    """Rewrite every stored secret through ``conversion(box)`` (encrypt going up, decrypt going down)."""
    bind = op.get_bind()
    rows = bind.execute(
        text("SELECT id, secret_ciphertext, previous_secret_ciphertext FROM webhook_subscription")
    ).all()
    if not rows:
        return
    convert = conversion(_migration_box())
    for row in rows:
        bind.execute(
            text("UPDATE webhook_subscription SET secret_ciphertext = :secret,"
                 " previous_secret_ciphertext = :previous WHERE id = :id"),
            {"id": row.id, "secret": convert(row.secret_ciphertext),
             "previous": None if row.previous_secret_ciphertext is None else convert(row.previous_secret_ciphertext)},
        )


def _migration_box() -> SecretBox:
    box: SecretBox | None = context.config.attributes.get("webhook_secret_box")
    if box is None:
        raise RuntimeError("webhook secrets need the encryption key: run `python -m leadflow_<svc> migrate`")
    return box


def drop_webhook_tables(op: Operations) -> None:
    for table in ("webhook_attempt", "webhook_delivery", "webhook_subscription"):
        op.drop_table(table)
