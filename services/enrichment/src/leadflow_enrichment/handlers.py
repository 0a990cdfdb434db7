"""Enrichment's use cases over one transaction: enrich a captured fill, merge a repeat fill."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import (
    AccountMatch,
    DataQuality,
    Event,
    LeadCaptured,
    LeadContact,
    LeadEnriched,
    LeadProfile,
    follow_up,
)
from leadflow_enrichment import domain, normalize
from leadflow_enrichment.directory import AccountDirectory, Matched
from leadflow_enrichment.provider import HttpFirmographicsProvider
from leadflow_enrichment.tables import lead, lead_fill
from leadflow_kit.consumer import PermanentError, UnitOfWork

log = logging.getLogger(__name__)

SOURCE = "enrichment"
QUALITY_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
ENRICH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class EnrichmentMetrics:
    """Built unregistered, then put on the app's registry by :meth:`register`."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.quality = Histogram("leadflow_enrichment_quality_score", "Data-quality score of enriched leads",
                                 ["service"], buckets=QUALITY_BUCKETS, registry=None)
        self.partial = Counter("leadflow_enrichment_partial_total", "Leads published partial, by reason",
                               ["service", "reason"], registry=None)
        self.duplicates = Counter("leadflow_enrichment_duplicates_total", "Fills merged into an existing lead",
                                  ["service"], registry=None)
        self.account_matches = Counter("leadflow_enrichment_account_matches_total",
                                       "Leads by how they matched an account", ["service", "method"], registry=None)
        self.provider_lookups = Counter(
            "leadflow_enrichment_provider_lookups_total", "Firmographics provider lookups, by outcome "
            "(answered, not_found, cached, provider_timeout, provider_error, provider_circuit_open)",
            ["service", "outcome"], registry=None)
        self.duration = Histogram("leadflow_enrichment_duration_seconds",
                                  "Time to enrich one fill (normalization, matching, providers)", ["service"],
                                  buckets=ENRICH_BUCKETS, registry=None)

    def register(self, registry: CollectorRegistry) -> None:
        for metric in (self.quality, self.partial, self.duplicates, self.account_matches, self.provider_lookups,
                       self.duration):
            registry.register(metric)


@dataclass
class Enrichment:
    """What the handlers need beyond the unit of work, built once per app."""

    directory: AccountDirectory
    provider: HttpFirmographicsProvider | None
    metrics: EnrichmentMetrics
    default_phone_region: str | None = None


@dataclass(frozen=True)
class Enriched:
    profile: LeadProfile
    quality: DataQuality
    account: AccountMatch | None
    partial_reasons: list[str]


async def match_account(session: AsyncSession, profile: LeadProfile, directory: AccountDirectory) -> Matched | None:
    """By the website's domain, then the mailbox's, then by the company name."""
    domains = [d for d in (profile.company_domain, normalize.registrable_domain(profile.email_domain)) if d]
    return await directory.match(session, domains, normalize.company_key(profile.company))


async def enrich(session: AsyncSession, contact: LeadContact, enrichment: Enrichment) -> Enriched:
    """Normalize, match an account, ask the provider chain for what is still missing, score the quality."""
    normalized = domain.normalize_contact(contact, enrichment.default_phone_region)
    profile = normalized.profile
    matched = await match_account(session, profile, enrichment.directory)
    facts = matched.account.firmographics() if matched is not None else None
    profile = domain.apply_firmographics(profile, facts)
    partial_reasons: list[str] = []
    if enrichment.provider is not None and profile.company_domain and not (facts and facts.complete):
        looked_up = await enrichment.provider.lookup(profile.company_domain)
        outcome = looked_up.failure or ("cached" if looked_up.cached else
                                        "answered" if looked_up.facts is not None else "not_found")
        enrichment.metrics.provider_lookups.labels(enrichment.metrics.service, outcome).inc()
        if looked_up.failure is not None:
            partial_reasons.append(looked_up.failure)
        profile = domain.apply_firmographics(profile, looked_up.facts)
    account_match = matched.match if matched is not None else None
    if account_match is not None and profile.company_domain is None:
        profile = profile.model_copy(update={"company_domain": account_match.domain})
    quality = domain.quality(profile, contact, normalized.problems, account_match, partial_reasons)
    return Enriched(profile, quality, account_match, partial_reasons)


async def enrich_captured_lead(event: Event[Any], uow: UnitOfWork, enrichment: Enrichment) -> None:
    captured = event.data
    if not isinstance(captured, LeadCaptured):
        raise PermanentError(f"expected lead.captured, got {event.type}")
    started = time.perf_counter()
    session = uow.session
    already = (await session.execute(
        select(lead_fill.c.lead_id).where(lead_fill.c.captured_lead_id == captured.lead_id)
    )).first()
    if already is not None:
        # Capture published this fill again under a new event id: it was enriched the first time.
        log.info("fill %s was already enriched into lead %s", captured.lead_id, already.lead_id)
        return

    email = domain.email_key(captured.contact.email)
    existing = None
    if email is not None:
        # Two fills of one person on different partitions must not both create the lead.
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                              {"key": f"lead-email:{email}"})
        existing = (await session.execute(select(lead).where(lead.c.email == email).with_for_update())).first()

    original = (domain.fill_blanks(LeadContact.model_validate(existing.original), captured.contact)
                if existing is not None else captured.contact)
    result = await enrich(session, original, enrichment)
    elapsed = time.perf_counter() - started
    now = uow.now()
    values: dict[str, Any] = {
        "original": original.model_dump(mode="json"),
        "profile": result.profile.model_dump(mode="json"),
        "account": result.account.model_dump(mode="json") if result.account else None,
        "quality": result.quality.model_dump(mode="json"),
        "partial": bool(result.partial_reasons),
        "partial_reasons": result.partial_reasons,
        "enrichment_ms": round(elapsed * 1000, 3),
        "updated_at": now,
    }
    if existing is None:
        lead_id = captured.lead_id
        await session.execute(insert(lead).values(
            id=lead_id, email=email, form_key=captured.form_key, custom_fields=captured.custom_fields,
            first_submitted_at=captured.submitted_at, last_submitted_at=captured.submitted_at, created_at=now,
            **values,
        ))
    else:
        lead_id = existing.id
        await session.execute(update(lead).where(lead.c.id == lead_id).values(
            fill_count=lead.c.fill_count + 1,
            last_submitted_at=func.greatest(lead.c.last_submitted_at, captured.submitted_at),
            custom_fields=lead.c.custom_fields.op("||")(captured.custom_fields),
            **values,
        ))
        enrichment.metrics.duplicates.labels(enrichment.metrics.service).inc()
    await session.execute(insert(lead_fill).values(
        captured_lead_id=captured.lead_id, lead_id=lead_id, form_key=captured.form_key,
        original=captured.contact.model_dump(mode="json"), submitted_at=captured.submitted_at,
        duplicate=existing is not None, enriched_at=now,
    ))

    enriched = LeadEnriched(
        lead_id=lead_id,
        captured_lead_id=captured.lead_id,
        duplicate_of=lead_id if existing is not None else None,
        form_key=captured.form_key,
        profile=result.profile,
        original=original,
        account=result.account,
        quality=result.quality,
        partial=bool(result.partial_reasons),
        partial_reasons=result.partial_reasons,
        attribution=captured.attribution,
        custom_fields=captured.custom_fields,
        visitor_id=captured.visitor_id,
    )
    # Keyed by the canonical lead, so every event about one person stays in order downstream.
    await uow.publish(follow_up(event, enriched, source=SOURCE, subject=lead_id, time=now))
    _observe(enrichment.metrics, result, elapsed)


def _observe(metrics: EnrichmentMetrics, result: Enriched, elapsed: float) -> None:
    service = metrics.service
    metrics.quality.labels(service).observe(result.quality.score)
    for reason in result.partial_reasons:
        metrics.partial.labels(service, reason).inc()
    metrics.account_matches.labels(service, result.account.method if result.account else "none").inc()
    metrics.duration.labels(service).observe(elapsed)
