"""Outgoing webhooks per the Standard Webhooks spec, delivered durably from the database.

A service enqueues a delivery in the same transaction as the business change (``enqueue_webhook``, or
``enqueue_webhooks`` for a batch's in one statement);
``WebhookDispatcher`` sends the rows that this process's transactions hand over at commit
(``WebhookHandOff``: leased to it in the insert) and claims the other due ones with ``FOR UPDATE SKIP
LOCKED``, signs them (``webhook-id`` /
``webhook-timestamp`` / ``webhook-signature``, HMAC-SHA256 via the ``standardwebhooks`` package), POSTs
them and records the outcome, retrying on a schedule that starts fast and backs off (with jitter,
honouring ``Retry-After``) until it runs out. Each subscription has its own bounded number of sends in
flight, so a slow receiver holds back only itself; a lead's deliveries to one subscription go out in
the order they were queued; a success wakes the subscription's backlog at once. A subscription that is
disabled (by an admin, or by its endpoint answering 410) keeps its deliveries ``held`` until it is
enabled again. Every final outcome (delivered or dead) becomes a ``lead.delivered.v1`` event through
the outbox. ``webhook_admin_router`` is the admin API for subscriptions, the delivery log and replay.

URLs are checked against ``WebhookSettings.egress_policy()`` when saved and again on every
connection (``leadflow_kit.egress``); signing secrets are stored encrypted (``leadflow_kit.secretbox``).

One module per concern: ``settings`` (``WebhookSettings``), ``tables`` (tables and migration steps),
``payload`` (the body, who receives it), ``signing`` (secrets and signature headers), ``policy`` (the
retry policy, pure), ``store`` (every SQL statement), ``dispatcher``, ``metrics``, ``schemas`` and
``admin`` (the admin API).

Wiring, in a service::

    # tables.py
    metadata = new_metadata()
    define_webhook_tables(metadata)
    # first migration, then the later revisions' steps in theirs
    create_webhook_tables(op)
    upgrade_webhook_tables_2(op)
    upgrade_webhook_tables_3(op)
    upgrade_webhook_tables_4(op)
    # settings.py
    class Settings(WebhookSettings): ...
    # bootstrap / app
    metrics = WebhookMetrics(platform.metrics.registry)
    hand_off = WebhookHandOff()   # optional: the batch path's webhooks go straight to the dispatcher
    background = [webhook_dispatcher(platform, metrics, hand_off)]
    # in a consumer's batch
    await enqueue_webhooks(session, webhooks, hand_off)
    routers = [webhook_admin_router(read_scope=..., write_scope=..., event_types=SENT_TYPES)]

Subscriptions may filter on the lead's tier, team and form: the service passes a ``DeliveryFacts``
to ``enqueue_webhook``, and only subscriptions whose filters it passes get a delivery.
"""

from leadflow_kit.webhooks.admin import webhook_admin_router
from leadflow_kit.webhooks.dispatcher import WebhookDispatcher, WebhookHandOff, webhook_dispatcher
from leadflow_kit.webhooks.metrics import WebhookMetrics
from leadflow_kit.webhooks.payload import ALL_EVENT_TYPES, subscription_patterns, webhook_payload
from leadflow_kit.webhooks.policy import AttemptOutcome, DeliveryStatus, NextStep, next_step, parse_retry_after
from leadflow_kit.webhooks.settings import WebhookSettings, webhook_settings
from leadflow_kit.webhooks.signing import (
    active_secrets,
    new_secret,
    new_webhook_id,
    reencrypt_webhook_secrets,
    signature_header,
    signed_headers,
)
from leadflow_kit.webhooks.store import (
    WEBHOOK_CHANNEL,
    DeliveryFacts,
    SubscriptionFilter,
    WebhookStore,
    WebhookToQueue,
    enqueue_webhook,
    enqueue_webhooks,
    webhook_transaction,
)
from leadflow_kit.webhooks.tables import (
    WebhookTables,
    attempt_table,
    create_webhook_tables,
    define_webhook_tables,
    delivery_table,
    downgrade_webhook_tables_2,
    downgrade_webhook_tables_3,
    downgrade_webhook_tables_4,
    drop_webhook_tables,
    subscription_table,
    upgrade_webhook_tables_2,
    upgrade_webhook_tables_3,
    upgrade_webhook_tables_4,
)

__all__ = [
    "ALL_EVENT_TYPES",
    "WEBHOOK_CHANNEL",
    "AttemptOutcome",
    "DeliveryFacts",
    "DeliveryStatus",
    "NextStep",
    "SubscriptionFilter",
    "WebhookDispatcher",
    "WebhookHandOff",
    "WebhookMetrics",
    "WebhookSettings",
    "WebhookStore",
    "WebhookTables",
    "WebhookToQueue",
    "active_secrets",
    "attempt_table",
    "create_webhook_tables",
    "define_webhook_tables",
    "delivery_table",
    "downgrade_webhook_tables_2",
    "downgrade_webhook_tables_3",
    "downgrade_webhook_tables_4",
    "drop_webhook_tables",
    "enqueue_webhook",
    "enqueue_webhooks",
    "new_secret",
    "new_webhook_id",
    "next_step",
    "parse_retry_after",
    "reencrypt_webhook_secrets",
    "signature_header",
    "signed_headers",
    "subscription_patterns",
    "subscription_table",
    "upgrade_webhook_tables_2",
    "upgrade_webhook_tables_3",
    "upgrade_webhook_tables_4",
    "webhook_admin_router",
    "webhook_dispatcher",
    "webhook_payload",
    "webhook_settings",
    "webhook_transaction",
]
