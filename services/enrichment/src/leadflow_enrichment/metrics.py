"""Enrichment's own Prometheus metrics (the kit's request, consumer and outbox metrics come with the platform)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

QUALITY_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
ENRICH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class EnrichmentMetrics:
    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service = service
        self.quality = Histogram("leadflow_enrichment_quality_score", "Data-quality score of enriched leads",
                                 ["service"], buckets=QUALITY_BUCKETS, registry=registry)
        self.partial = Counter("leadflow_enrichment_partial_total", "Leads published partial, by reason",
                               ["service", "reason"], registry=registry)
        self.duplicates = Counter("leadflow_enrichment_duplicates_total", "Fills merged into an existing lead",
                                  ["service"], registry=registry)
        self.account_matches = Counter("leadflow_enrichment_account_matches_total",
                                       "Leads by how they matched an account", ["service", "method"],
                                       registry=registry)
        self.provider_lookups = Counter(
            "leadflow_enrichment_provider_lookups_total", "Firmographics provider lookups, by outcome "
            "(answered, not_found, cached, provider_timeout, provider_error, provider_circuit_open)",
            ["service", "outcome"], registry=registry)
        self.duration = Histogram("leadflow_enrichment_duration_seconds",
                                  "Time to enrich one fill: its share of its batch's (normalization, matching) "
                                  "plus its provider lookup", ["service"],
                                  buckets=ENRICH_BUCKETS, registry=registry)
        # The data-quality report's figures over the last window, per form and source (the most frequent
        # sources by name, the rest as "(other)"), set by a periodic refresh.
        self.quality_fills = Gauge("leadflow_enrichment_data_quality_fills",
                                   "Fills submitted in the data-quality window", ["service", "form", "source"],
                                   registry=registry)
        self.quality_ratio = Gauge("leadflow_enrichment_data_quality_ratio",
                                   "Share of the window's fills with a data-quality figure (duplicate, "
                                   "invalid_email, invalid_phone, free_email, disposable_email, role_address, "
                                   "account_match; provider_success: of the fills that asked the provider)",
                                   ["service", "form", "source", "figure"], registry=registry)
        self.quality_completeness = Gauge("leadflow_enrichment_data_quality_completeness",
                                          "Share of the window's fills that gave the field",
                                          ["service", "form", "source", "field"], registry=registry)
