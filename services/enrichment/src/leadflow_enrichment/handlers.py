"""Enrichment's use cases over one transaction: enrich a captured fill, merge a repeat fill."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
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
from leadflow_enrichment.provider import HttpFirmographicsProvider, Lookup
from leadflow_kit.consumer import PermanentError, UnitOfWork
from leadflow_kit.db import Database, driver_connection

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
    # Time a provider lookup made before the transaction took; it counts towards the fill's enrichment.
    prefetched_seconds: float = 0.0


def _prefetch_key(event_id: str) -> str:
    return f"firmographics:{event_id}"


async def match_account(session: AsyncSession, profile: LeadProfile, directory: AccountDirectory,
                        directory_version: int | None = None) -> Matched | None:
    """By the website's domain, then the mailbox's, then by the company name. A free or disposable
    mail domain is never matched, even where an older import gave one to an account."""
    candidates = (profile.company_domain, normalize.registrable_domain(profile.email_domain))
    domains = [d for d in candidates if d and not normalize.is_mailbox_provider(d)]
    return await directory.match(session, domains, normalize.company_key(profile.company),
                                 version=directory_version)


def _needs_provider(profile: LeadProfile, matched: Matched | None) -> bool:
    facts = matched.account.firmographics() if matched is not None else None
    return bool(profile.company_domain) and not (facts and facts.complete)


async def prefetch_firmographics(
    events: list[Event[Any]], db: Database, enrichment: Enrichment
) -> dict[str, tuple[str, Lookup]]:
    """Ask the provider, before the consumer's transaction, about the company domains of a batch's fills
    that the account directory cannot complete: no transaction, lock or pooled connection then waits
    on an outside service, and the batch waits for its slowest lookup instead of their sum."""
    if enrichment.provider is None:
        return {}
    provider = enrichment.provider
    with_domain: dict[str, tuple[LeadProfile, str]] = {}  # event id -> (profile, company domain)
    for event in events:
        if isinstance(event.data, LeadCaptured):
            profile = domain.normalize_contact(event.data.contact, enrichment.default_phone_region).profile
            if profile.company_domain:
                with_domain[event.id] = (profile, profile.company_domain)
    if not with_domain:
        return {}
    wanted: dict[str, str] = {}  # event id -> company domain
    async with db.transaction() as session:
        for event_id, (profile, company_domain) in with_domain.items():
            if _needs_provider(profile, await match_account(session, profile, enrichment.directory)):
                wanted[event_id] = company_domain
    domains = list(dict.fromkeys(wanted.values()))
    found = dict(zip(domains, await asyncio.gather(*(provider.lookup(d) for d in domains)), strict=True))
    prefetched: dict[str, tuple[str, Lookup]] = {}
    asked: set[str] = set()
    for event_id, company_domain in wanted.items():
        looked_up = found[company_domain]
        if company_domain in asked and looked_up.failure is None:
            # The provider was asked once for the batch; the next fills of that company read its answer.
            looked_up = dataclasses.replace(looked_up, cached=True, seconds=0.0)
        asked.add(company_domain)
        prefetched[_prefetch_key(event_id)] = (company_domain, looked_up)
    return prefetched


async def enrich(session: AsyncSession, contact: LeadContact, enrichment: Enrichment,
                 directory_version: int | None = None, prefetched: tuple[str, Lookup] | None = None) -> Enriched:
    """Normalize, match an account, ask the provider chain for what is still missing, score the quality.

    ``directory_version``: the account directory's version when the caller has read it in this transaction.
    ``prefetched``: the (domain, lookup) :func:`prefetch_firmographics` made for this fill before the
    transaction; another domain (a repeat fill completed from the earlier one) is looked up here.
    """
    normalized = domain.normalize_contact(contact, enrichment.default_phone_region)
    profile = normalized.profile
    matched = await match_account(session, profile, enrichment.directory, directory_version)
    needs_provider = _needs_provider(profile, matched)
    facts = matched.account.firmographics() if matched is not None else None
    profile = domain.apply_firmographics(profile, facts)
    partial_reasons: list[str] = []
    prefetched_seconds = 0.0
    if enrichment.provider is not None and profile.company_domain and needs_provider:
        if prefetched is not None and prefetched[0] == profile.company_domain:
            looked_up = prefetched[1]
            prefetched_seconds = looked_up.seconds
        else:
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
    return Enriched(profile, quality, account_match, partial_reasons, prefetched_seconds)


# After the email's lock, in a statement of its own so it sees what the lock waited for: whether this
# fill was enriched before, the lead of the same email (locked), and the directory version.
LOOK_UP_FILL = """
SELECT (SELECT lead_id FROM lead_fill WHERE captured_lead_id = $1) AS already_lead_id,
       (SELECT version FROM account_directory WHERE id = 1) AS directory_version,
       existing.id AS existing_id,
       existing.original AS existing_original,
       existing.custom_fields AS existing_custom_fields
FROM (SELECT) AS one
LEFT JOIN LATERAL (SELECT id, original, custom_fields FROM lead WHERE email = $2 FOR UPDATE) AS existing ON true"""
# The lead and the fill linked to it in one statement.
INSERT_LEAD_AND_FILL = """
WITH written AS (
    INSERT INTO lead (id, email, form_key, custom_fields, first_submitted_at, last_submitted_at, created_at,
                      original, profile, account, quality, partial, partial_reasons, enrichment_ms, updated_at)
    VALUES ($1, $2, $3, $4::jsonb, $5, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10::jsonb, $11, $12::jsonb, $13, $6)
    RETURNING id
)
INSERT INTO lead_fill (captured_lead_id, lead_id, form_key, original, submitted_at, duplicate, enriched_at)
SELECT $1, id, $3, $14::jsonb, $5, false, $6 FROM written"""
MERGE_INTO_LEAD_AND_INSERT_FILL = """
WITH written AS (
    UPDATE lead SET fill_count = fill_count + 1, last_submitted_at = greatest(last_submitted_at, $5),
                    custom_fields = $4::jsonb, original = $7::jsonb, profile = $8::jsonb,
                    account = $9::jsonb, quality = $10::jsonb, partial = $11, partial_reasons = $12::jsonb,
                    enrichment_ms = $13, updated_at = $6
    WHERE id = $2
    RETURNING id
)
INSERT INTO lead_fill (captured_lead_id, lead_id, form_key, original, submitted_at, duplicate, enriched_at)
SELECT $1, id, $3, $14::jsonb, $5, true, $6 FROM written"""


async def enrich_captured_lead(event: Event[Any], uow: UnitOfWork, enrichment: Enrichment) -> None:
    captured = event.data
    if not isinstance(captured, LeadCaptured):
        raise PermanentError(f"expected lead.captured, got {event.type}")
    started = time.perf_counter()
    session = uow.session
    conn = await driver_connection(session)
    email = domain.email_key(captured.contact.email)
    if email is not None:
        # Two fills of one person on different partitions must not both create the lead.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"lead-email:{email}")
    found = await conn.fetchrow(LOOK_UP_FILL, captured.lead_id, email)
    if found is None:
        raise RuntimeError("the fill lookup returned no row")
    if found["already_lead_id"] is not None:
        # Capture published this fill again under a new event id: it was enriched the first time.
        log.info("fill %s was already enriched into lead %s", captured.lead_id, found["already_lead_id"])
        return
    existing_id: str | None = found["existing_id"]

    original = (domain.fill_blanks(LeadContact.model_validate(found["existing_original"]), captured.contact)
                if existing_id is not None else captured.contact)
    result = await enrich(session, original, enrichment, found["directory_version"],
                          uow.prepared.get(_prefetch_key(event.id)))
    elapsed = time.perf_counter() - started + result.prefetched_seconds
    now = uow.now()
    # JSON null, not SQL NULL, for no account: what the column held when SQLAlchemy wrote it.
    values = (
        json.dumps(original.model_dump(mode="json")),
        json.dumps(result.profile.model_dump(mode="json")),
        json.dumps(result.account.model_dump(mode="json") if result.account else None),
        json.dumps(result.quality.model_dump(mode="json")),
        bool(result.partial_reasons),
        json.dumps(result.partial_reasons),
        round(elapsed * 1000, 3),
        json.dumps(captured.contact.model_dump(mode="json")),
    )
    custom_fields = (domain.fill_blank_custom_fields(dict(found["existing_custom_fields"] or {}),
                                                     captured.custom_fields)
                     if existing_id is not None else captured.custom_fields)
    if existing_id is None:
        lead_id = captured.lead_id
        await conn.execute(INSERT_LEAD_AND_FILL, lead_id, email, captured.form_key, json.dumps(custom_fields),
                           captured.submitted_at, now, *values)
    else:
        lead_id = existing_id
        await conn.execute(MERGE_INTO_LEAD_AND_INSERT_FILL, captured.lead_id, lead_id, captured.form_key,
                           json.dumps(custom_fields), captured.submitted_at, now, *values)
        enrichment.metrics.duplicates.labels(enrichment.metrics.service).inc()

    enriched = LeadEnriched(
        lead_id=lead_id,
        captured_lead_id=captured.lead_id,
        duplicate_of=lead_id if existing_id is not None else None,
        form_key=captured.form_key,
        profile=result.profile,
        original=original,
        account=result.account,
        quality=result.quality,
        partial=bool(result.partial_reasons),
        partial_reasons=result.partial_reasons,
        attribution=captured.attribution,
        custom_fields=custom_fields,
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
