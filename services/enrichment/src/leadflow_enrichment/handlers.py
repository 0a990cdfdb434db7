"""Enrichment's use cases: enrich captured fills (a repeat fill of a known email merges into its lead), and,
before a batch's transaction, ask the firmographics provider what the account directory cannot tell."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

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
from leadflow_enrichment.bootstrap import Deps
from leadflow_enrichment.directory import Matched
from leadflow_enrichment.domain import KnownLead
from leadflow_enrichment.metrics import EnrichmentMetrics
from leadflow_enrichment.normalize import EmailResult
from leadflow_enrichment.provider import Lookup
from leadflow_enrichment.quality import by_form_and_source, figures, gauge_ratios
from leadflow_enrichment.store import EnrichedFill, FillLookup
from leadflow_kit.consumer import UnitOfWork, one_at_a_time
from leadflow_kit.db import as_background_scan

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
    # The provider's answer when the fill asked it (answered, not_found, cached or the failure).
    provider_outcome: str | None = None


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
    async with deps.platform.pipeline_db.transaction() as session:
        matched = await deps.directory.match_leads(session, [profile for profile, _ in with_domain.values()])
    wanted = {event_id: company_domain  # event id -> company domain
              for (event_id, (profile, company_domain)), found in zip(with_domain.items(), matched, strict=True)
              if _needs_provider(profile, found)}
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


@dataclass(frozen=True)
class Fill:
    """A captured fill as the batch will write it: the lead it becomes or merges into, and what it leaves."""

    event: Event[LeadCaptured]
    email: str | None
    found: FillLookup
    original: LeadContact
    custom_fields: dict[str, str]
    # The original's address as normalize_email read it for the key, when the original carries the address
    # this fill typed (a repeat fill's carries the one stored first, unless that was blank).
    read_email: EmailResult | None


async def enrich_captured_leads(events: list[Event[LeadCaptured]], uow: UnitOfWork[Deps]) -> None:
    """A batch of fills in a few statements whatever its size (the emails' locks, one look-up, the account
    matching, one write), each fill seeing the batch's earlier fills as it would one by one."""
    started = time.perf_counter()
    store, session = uow.deps.store, uow.session
    # Each address is validated once: its result gives the fill's key here and its profile's email fields.
    read_emails = [normalize.normalize_email(event.data.contact.email) for event in events]
    emails = [read.email for read in read_emails]  # domain.email_key of each
    # Two fills of one person on different partitions must not both create the lead.
    await store.lock_emails(session, sorted({email for email in emails if email is not None}))
    found = await store.look_up_fills(session, [(e.data.lead_id, email) for e, email in zip(events, emails,
                                                                                             strict=True)])
    fills = _fills_in_order(events, read_emails, found)
    if not fills:
        return
    results = await enrich_many(session, [(fill.original, fill.read_email,
                                           uow.prepared.get(_prefetch_key(fill.event.id))) for fill in fills],
                                uow.deps, fills[0].found.directory_version)
    # Each fill's share of the batch's time, plus its own provider lookup before the transaction.
    share = (time.perf_counter() - started) / len(fills)
    written = [_enriched_fill(fill, result, share + result.prefetched_seconds, uow.now())
               for fill, result in zip(fills, results, strict=True)]
    await store.save_fills(session, written)
    for fill, result, enriched_fill in zip(fills, results, written, strict=True):
        await _publish(uow, fill, result, enriched_fill)


def _fills_in_order(events: list[Event[LeadCaptured]], read_emails: list[EmailResult],
                    found: list[FillLookup]) -> list[Fill]:
    """The fills to write, each merged into what the batch's earlier fills of its email left (as one by one),
    without the fills capture published again (enriched before, or earlier in this batch)."""
    known: dict[str, KnownLead] = {}  # email -> its lead as the batch's fills so far leave it
    done: set[str] = set()  # captured lead ids enriched in this batch
    fills: list[Fill] = []
    for event, read_email, lookup in zip(one_at_a_time(events), read_emails, found, strict=True):
        captured, email = event.data, read_email.email
        already = lookup.already_lead_id or (captured.lead_id if captured.lead_id in done else None)
        if already is not None:
            log.info("fill %s was already enriched into lead %s", captured.lead_id, already)
            continue
        lead = known.get(email, lookup.known) if email is not None else None
        original, custom_fields = domain.merge_fill(lead, captured)
        fill = Fill(event, email, dataclasses.replace(lookup, known=lead), original, custom_fields,
                    read_email if original.email == captured.contact.email else None)
        if email is not None:
            known[email] = KnownLead(lead.id if lead is not None else captured.lead_id, original, custom_fields)
        done.add(captured.lead_id)
        fills.append(fill)
    return fills


async def enrich_many(session: AsyncSession,
                      fills: list[tuple[LeadContact, EmailResult | None, tuple[str, Lookup] | None]],
                      deps: Deps, directory_version: int | None = None) -> list[Enriched]:
    """Normalize each contact, match the accounts of all of them at once, ask the provider chain for what
    is still missing, score the quality.

    ``directory_version``: the account directory's version when the caller has read it in this transaction.
    Each fill's email result, when not None, is its contact's address as normalize_email read it (it is read
    here otherwise). Each fill's ``prefetched`` (domain, lookup) is what :func:`prefetch_firmographics` found
    for it before the transaction; another domain (a repeat fill completed from the earlier one) is looked
    up here.
    """
    normalized = [domain.normalize_contact(contact, deps.settings.default_phone_region, read_email)
                  for contact, read_email, _ in fills]
    matched = await deps.directory.match_leads(session, [n.profile for n in normalized], directory_version)
    return [await _complete(deps, contact, found, match, prefetched)
            for (contact, _, prefetched), found, match in zip(fills, normalized, matched, strict=True)]


async def _complete(deps: Deps, contact: LeadContact, normalized: domain.Normalized, matched: Matched | None,
                    prefetched: tuple[str, Lookup] | None) -> Enriched:
    profile = normalized.profile
    needs_provider = _needs_provider(profile, matched)
    profile = domain.apply_firmographics(profile, matched.account.firmographics() if matched is not None else None)
    partial_reasons: list[str] = []
    prefetched_seconds = 0.0
    outcome: str | None = None
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
    return Enriched(profile, quality, account_match, partial_reasons, prefetched_seconds, outcome)


async def _publish(uow: UnitOfWork[Deps], fill: Fill, result: Enriched, written: EnrichedFill) -> None:
    captured = fill.event.data
    if written.merged:
        uow.deps.metrics.duplicates.labels(uow.deps.metrics.service).inc()
    enriched = LeadEnriched(
        lead_id=written.lead_id,
        captured_lead_id=captured.lead_id,
        duplicate_of=written.lead_id if written.merged else None,
        form_key=captured.form_key,
        profile=result.profile,
        original=fill.original,
        account=result.account,
        quality=result.quality,
        partial=bool(result.partial_reasons),
        partial_reasons=result.partial_reasons,
        attribution=captured.attribution,
        custom_fields=fill.custom_fields,
        visitor_id=captured.visitor_id,
        consent=captured.consent,
    )
    # Keyed by the canonical lead, so every event about one person stays in order downstream.
    await uow.publish(follow_up(fill.event, enriched, source=SOURCE, subject=written.lead_id,
                                time=written.enriched_at))
    _observe(uow.deps.metrics, result, written.enrichment_ms / 1000)


def _enriched_fill(fill: Fill, result: Enriched, elapsed: float, now: datetime) -> EnrichedFill:
    captured, known = fill.event.data, fill.found.known
    return EnrichedFill(
        captured_lead_id=captured.lead_id,
        lead_id=known.id if known is not None else captured.lead_id,
        merged=known is not None,
        email=fill.email,
        form_key=captured.form_key,
        submitted_at=captured.submitted_at,
        enriched_at=now,
        original=fill.original,
        custom_fields=fill.custom_fields,
        profile=result.profile,
        account=result.account,
        quality=result.quality,
        partial_reasons=result.partial_reasons,
        enrichment_ms=round(elapsed * 1000, 3),
        fill=captured.contact,
        source=(captured.attribution.utm_source or "direct")[:255],
        provider_outcome=result.provider_outcome,
    )


def _observe(metrics: EnrichmentMetrics, result: Enriched, elapsed: float) -> None:
    service = metrics.service
    metrics.quality.labels(service).observe(result.quality.score)
    for reason in result.partial_reasons:
        metrics.partial.labels(service, reason).inc()
    metrics.account_matches.labels(service, result.account.method if result.account else "none").inc()
    metrics.duration.labels(service).observe(elapsed)


async def refresh_quality_gauges(deps: Deps) -> None:
    """Set the data-quality gauges to the figures of the fills of the last window, per form and source."""
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        await as_background_scan(session)
        counts = await deps.store.fill_counts(
            session, now - timedelta(seconds=deps.settings.data_quality_window_seconds), now, None)
    metrics, service = deps.metrics, deps.metrics.service
    # A form or source without fills in the window has no figures any more, not its last ones.
    for gauge in (metrics.quality_fills, metrics.quality_ratio, metrics.quality_completeness):
        gauge.clear()
    for group in by_form_and_source(counts, deps.settings.data_quality_gauge_sources):
        of_group = figures(group)
        metrics.quality_fills.labels(service, group.form, group.source).set(group.fills)
        for figure, value in gauge_ratios(of_group).items():
            metrics.quality_ratio.labels(service, group.form, group.source, figure).set(value)
        for name, share in of_group["completeness"].items():
            if share is not None:
                metrics.quality_completeness.labels(service, group.form, group.source, name).set(share)
