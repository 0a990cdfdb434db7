"""The webhook metrics, registered on the service's registry (create one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

DELIVERY_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "leadflow_webhook_deliveries_total", "Webhook delivery attempts, by outcome (delivered|failed|dead)",
            ["service", "outcome"], registry=registry,
        )
        self.recordings = Counter(
            "leadflow_webhook_outcome_recordings_total",
            "Transactions that recorded webhook outcomes (several each while the CPU is short)",
            ["service"], registry=registry,
        )
        self.duration = Histogram(
            "leadflow_webhook_delivery_duration_seconds", "Time of one webhook HTTP attempt",
            ["service"], buckets=DELIVERY_DURATION_BUCKETS, registry=registry,
        )
