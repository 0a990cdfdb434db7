"""Routing's own Prometheus metrics (the platform's are in ``leadflow_kit.metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.decisions = Counter(
            "leadflow_routing_decisions_total", "Routing decisions, by outcome", ["outcome"], registry=registry
        )
        self.fallback = Counter(
            "leadflow_routing_fallback_total", "Leads sent to a fallback queue, by the team that could not take them",
            ["team"], registry=registry,
        )
        self.parked = Counter(
            "leadflow_routing_parked_total",
            "Scored leads parked because another transaction held their team's or rep's row past the grace",
            registry=registry,
        )
        self.unparked = Counter(
            "leadflow_routing_unparked_total", "Parked leads routed once their rows were free", registry=registry,
        )
        self.parked_leads = Gauge(
            "leadflow_routing_parked_leads", "Scored leads parked now (as the drainer last counted)", registry=registry,
        )
        self.parked_oldest_age = Gauge(
            "leadflow_routing_parked_oldest_age_seconds", "How long the oldest parked lead has waited",
            registry=registry,
        )
