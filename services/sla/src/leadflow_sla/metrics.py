"""sla's own metrics, on the app's registry (names fixed in the team brief; alert rules depend on them)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Buckets on the SLA thresholds (hot 5 min, warm 1 h, cold 24 h and the steps between).
SPEED_TO_LEAD_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800)
PIPELINE_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class SlaMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.open_clocks = Gauge(
            "leadflow_sla_open_clocks", "First-touch clocks still running", ["tier"], registry=registry,
        )
        self.breaches = Counter(
            "leadflow_sla_breaches_total", "Leads not touched within their SLA", ["tier", "team"],
            registry=registry,
        )
        self.warnings = Counter(
            "leadflow_sla_warnings_total", "Leads past the SLA warning threshold", ["tier", "team"],
            registry=registry,
        )
        self.speed_to_lead = Histogram(
            "leadflow_speed_to_lead_seconds", "Time from capture to the first touch", ["tier", "team"],
            buckets=SPEED_TO_LEAD_BUCKETS, registry=registry,
        )
        self.pipeline_stage = Histogram(
            "leadflow_pipeline_stage_seconds", "Seconds from capture until a lead first reached a stage",
            ["stage"], buckets=PIPELINE_STAGE_BUCKETS, registry=registry,
        )
        self.leads_captured = Counter(
            "leadflow_leads_captured_total", "Leads captured, as seen by sla", ["form"], registry=registry,
        )
