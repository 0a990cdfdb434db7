"""Enrichment's use cases: enrich captured fills (a repeat fill of a known email merges into its lead), and,
before a batch's transaction, ask the firmographics provider what the account directory cannot tell."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import datetime

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
from leadflow_enrichment import domain
from leadflow_enrichment.bootstrap import Deps
from leadflow_enrichment.directory import Matched
from leadflow_enrichment.metrics import EnrichmentMetrics
from leadflow_enrichment.provider import Lookup
from leadflow_enrichment.store import EnrichedFill, FillLookup
from leadflow_kit.consumer import UnitOfWork, one_at_a_time

log = logging.getLogger(__name__)

SOURCE = "enrichment"


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


def _needs_provider(profile: LeadProfile, matched: Matched | None) -> bool:
    facts = matched.account.firmographics() if matched is not None else None
    return bool(profile.company_domain) and not (facts and facts.complete)


async def prefetch_firmographics(events: list[Event[LeadCaptured]], deps: Deps) -> dict[str, tuple[str, Lookup]]:
    """Ask the provider, before the consumer's transaction, about the company domains of a batch's fills
    that the account directory cannot complete: no transaction, lock or pooled connection then waits
    on an outside service, and the batch waits for its slowest lookup instead of their sum."""
    if deps.provider is None:
        return {}
    provider = deps.provider
    with_domain: dict[str, tuple[LeadProfile, str]] = {}  # event id -> (profile, company domain)
    for event in events:
        profile = domain.normalize_contact(event.data.contact, deps.settings.default_phone_region).profile
        if profile.company_domain:
            with_domain[event.id] = (profile, profile.company_domain)
    if not with_domain:
        return {}
    wanted: dict[str, str] = {}  # event id -> company domain
    async with deps.platform.db.transaction() as session:
        for event_id, (profile, company_domain) in with_domain.items():
            if _needs_provider(profile, await deps.directory.match_lead(session, profile)):
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


async def enrich(session: AsyncSession, contact: LeadContact, deps: Deps,
                 directory_version: int | None = None, prefetched: tuple[str, Lookup] | None = None) -> Enriched:
    """Normalize, match an account, ask the provider chain for what is still missing, score the quality.

    ``directory_version``: the account directory's version when the caller has read it in this transaction.
    ``prefetched``: the (domain, lookup) :func:`prefetch_firmographics` made for this fill before the
    transaction; another domain (a repeat fill completed from the earlier one) is looked up here.
    """
    normalized = domain.normalize_contact(contact, deps.settings.default_phone_region)
    profile = normalized.profile
    matched = await deps.directory.match_lead(session, profile, directory_version)
    needs_provider = _needs_provider(profile, matched)
    profile = domain.apply_firmographics(profile, matched.account.firmographics() if matched is not None else None)
    partial_reasons: list[str] = []
    prefetched_seconds = 0.0
    if deps.provider is not None and profile.company_domain and needs_provider:
        if prefetched is not None and prefetched[0] == profile.company_domain:
            looked_up = prefetched[1]
            prefetched_seconds = looked_up.seconds
        else:
            looked_up = await deps.provider.lookup(profile.company_domain)
        outcome = looked_up.failure or ("cached" if looked_up.cached else
                                        "answered" if looked_up.facts is not None else "not_found")
        deps.metrics.provider_lookups.labels(deps.metrics.service, outcome).inc()
        if looked_up.failure is not None:
            partial_reasons.append(looked_up.failure)
        profile = domain.apply_firmographics(profile, looked_up.facts)
    account_match = matched.match if matched is not None else None
    if account_match is not None and profile.company_domain is None:
        profile = profile.model_copy(update={"company_domain": account_match.domain})
    quality = domain.quality(profile, contact, normalized.problems, account_match, partial_reasons)
    return Enriched(profile, quality, account_match, partial_reasons, prefetched_seconds)


async def enrich_captured_leads(events: list[Event[LeadCaptured]], uow: UnitOfWork[Deps]) -> None:
    for event in one_at_a_time(events):
        await enrich_captured_lead(event, uow)


async def enrich_captured_lead(event: Event[LeadCaptured], uow: UnitOfWork[Deps]) -> None:
    captured = event.data
    started = time.perf_counter()
    store = uow.deps.store
    email = domain.email_key(captured.contact.email)
    if email is not None:
        # Two fills of one person on different partitions must not both create the lead.
        await store.lock_email(uow.session, email)
    found = await store.look_up_fill(uow.session, captured.lead_id, email)
    if found.already_lead_id is not None:
        # Capture published this fill again under a new event id: it was enriched the first time.
        log.info("fill %s was already enriched into lead %s", captured.lead_id, found.already_lead_id)
        return
    original, custom_fields = domain.merge_fill(found.known, captured)
    result = await enrich(uow.session, original, uow.deps, found.directory_version,
                          uow.prepared.get(_prefetch_key(event.id)))
    elapsed = time.perf_counter() - started + result.prefetched_seconds
    fill = _enriched_fill(captured, found, email, original, custom_fields, result, elapsed, uow.now())
    await store.save_fill(uow.session, fill)
    if fill.merged:
        uow.deps.metrics.duplicates.labels(uow.deps.metrics.service).inc()
    enriched = LeadEnriched(
        lead_id=fill.lead_id,
        captured_lead_id=captured.lead_id,
        duplicate_of=fill.lead_id if fill.merged else None,
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
        consent=captured.consent,
    )
    # Keyed by the canonical lead, so every event about one person stays in order downstream.
    await uow.publish(follow_up(event, enriched, source=SOURCE, subject=fill.lead_id, time=fill.enriched_at))
    _observe(uow.deps.metrics, result, elapsed)


def _enriched_fill(captured: LeadCaptured, found: FillLookup, email: str | None, original: LeadContact,
                   custom_fields: dict[str, str], result: Enriched, elapsed: float, now: datetime) -> EnrichedFill:
    return EnrichedFill(
        captured_lead_id=captured.lead_id,
        lead_id=found.known.id if found.known is not None else captured.lead_id,
        merged=found.known is not None,
        email=email,
        form_key=captured.form_key,
        submitted_at=captured.submitted_at,
        enriched_at=now,
        original=original,
        custom_fields=custom_fields,
        profile=result.profile,
        account=result.account,
        quality=result.quality,
        partial_reasons=result.partial_reasons,
        enrichment_ms=round(elapsed * 1000, 3),
        fill=captured.contact,
    )


def _observe(metrics: EnrichmentMetrics, result: Enriched, elapsed: float) -> None:
    service = metrics.service
    metrics.quality.labels(service).observe(result.quality.score)
    for reason in result.partial_reasons:
        metrics.partial.labels(service, reason).inc()
    metrics.account_matches.labels(service, result.account.method if result.account else "none").inc()
    metrics.duration.labels(service).observe(elapsed)
