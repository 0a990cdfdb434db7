"""Routing's own Prometheus metrics (the platform's are in ``leadflow_kit.metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.decisions = Counter(
            "leadflow_routing_decisions_total", "Routing decisions, by outcome", ["outcome"], registry=registry
        )
        self.fallback = Counter(
            "leadflow_routing_fallback_total", "Leads sent to a fallback queue, by the team that could not take them",
            ["team"], registry=registry,
        )
