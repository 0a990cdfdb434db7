"""Capture's own Prometheus metrics (the kit's request and relay metrics are the platform's)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.submissions = Counter(
            "leadflow_submissions_total", "Form submissions by form and outcome", ["form", "outcome"],
            registry=registry,
        )
        self.leads_captured = Counter(
            "leadflow_leads_captured_total", "Leads stored (and queued for lead.captured) by form", ["form"],
            registry=registry,
        )
        self.activities = Counter(
            "leadflow_activities_total", "Behavioral events accepted, by type family", ["kind"], registry=registry,
        )
        self.group_size = Histogram(
            "leadflow_capture_group_size", "Form fills committed together in one transaction (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=registry,
        )
        self.activity_group_size = Histogram(
            "leadflow_capture_activity_group_size",
            "Activity posts committed together in one transaction (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=registry,
        )
