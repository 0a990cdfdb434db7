"""The metrics every service exposes, on a registry the app owns (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "leadflow_http_requests_total", "HTTP requests served",
            ["service", "method", "route", "status"], registry=r,
        )
        self.http_duration = Histogram(
            "leadflow_http_request_duration_seconds", "HTTP request latency",
            ["service", "method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.events_consumed = Counter(
            "leadflow_events_consumed_total", "Events taken from Kafka, by outcome",
            ["service", "topic", "outcome"], registry=r,
        )
        self.event_handle_duration = Histogram(
            "leadflow_event_handle_duration_seconds", "Time to handle one event, DB commit included",
            ["service", "topic"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.events_published = Counter(
            "leadflow_events_published_total", "Events the outbox published to Kafka (directly or by its relay)",
            ["service", "topic"], registry=r,
        )
        self.outbox_left_to_relay = Counter(
            "leadflow_outbox_left_to_relay_total",
            "Committed outbox rows the writing process did not send itself, by reason (kafka, database, "
            "order: an older row of the key was pending, paused, stopped); the relay publishes them",
            ["service", "reason"], registry=r,
        )
        self.outbox_backlog = Gauge(
            "leadflow_outbox_backlog", "Outbox rows not yet published", ["service"], registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "leadflow_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row",
            ["service"], registry=r,
        )
        self.consumer_lag = Gauge(
            "leadflow_consumer_lag", "Records behind the partition's high watermark",
            ["service", "topic", "partition"], registry=r,
        )
        self.consumer_retries = Counter(
            "leadflow_consumer_retries_total",
            "Handler attempts retried, by reason: infrastructure (an outage: the partition waits) or error",
            ["service", "topic", "reason"], registry=r,
        )
        self.consumer_lingered_polls = Counter(
            "leadflow_consumer_lingered_polls_total",
            "Polls that waited up to consumer_linger_ms for more records because the CPU was short",
            ["service"], registry=r,
        )
        self.dead_lettered = Counter(
            "leadflow_dead_lettered_total", "Events sent to a dead-letter topic",
            ["service", "topic"], registry=r,
        )
        self.retention_deleted = Counter(
            "leadflow_retention_deleted_rows_total", "Rows the retention sweeper deleted, by rule",
            ["service", "rule"], registry=r,
        )
