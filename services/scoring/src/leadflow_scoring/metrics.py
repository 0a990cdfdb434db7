"""Scoring's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from leadflow_scoring.store import StoredModel

SCORE_BUCKETS = (-50, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120, 150, 200)


class ScoringMetrics:
    """Scores published, MQLs made and the model in use, registered on the registry given."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.scored = Counter("leadflow_leads_scored_total", "lead.scored events published, by what caused them",
                              ["service", "trigger"], registry=registry)
        self.mql = Counter("leadflow_mql_total", "Leads that became MQLs, by priority tier",
                           ["service", "tier"], registry=registry)
        self.score = Histogram("leadflow_lead_score", "Scores published", ["service"], buckets=SCORE_BUCKETS,
                               registry=registry)
        self.model_version = Gauge("leadflow_scoring_model_version", "Version number of the active scoring model",
                                   ["service", "model"], registry=registry)
        self._model_shown: str | None = None

    def model_in_use(self, model: StoredModel) -> None:
        if self._model_shown != model.id:
            self.model_version.clear()
            self.model_version.labels(self.service, model.name).set(model.version)
            self._model_shown = model.id

    def published(self, trigger: str, score: float, model: StoredModel, mql_tier: str | None) -> None:
        """A lead.scored went out (after its transaction committed); ``mql_tier`` when the lead became an MQL."""
        self.scored.labels(self.service, trigger).inc()
        self.score.labels(self.service).observe(score)
        if mql_tier is not None:
            self.mql.labels(self.service, mql_tier).inc()
        self.model_in_use(model)
