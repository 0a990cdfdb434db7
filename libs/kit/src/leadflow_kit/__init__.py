"""The platform every LeadFlow service stands on: settings, database, outbox, idempotent consumer,
app factory with health/readiness/metrics, JSON logging, API keys, webhooks."""
