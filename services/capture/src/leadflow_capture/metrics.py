"""Capture's own Prometheus metrics (the kit's request and relay metrics are the platform's)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


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
