"""An in-memory enrichment store and the deps around it, for handler tests with no database or broker."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import Event, LeadCaptured, LeadContact, new_event
from leadflow_enrichment.bootstrap import Deps
from leadflow_enrichment.directory import AccountDirectory
from leadflow_enrichment.domain import AccountRecord, KnownLead, account_name_key
from leadflow_enrichment.metrics import EnrichmentMetrics
from leadflow_enrichment.provider import HttpFirmographicsProvider
from leadflow_enrichment.settings import Settings
from leadflow_enrichment.store import EnrichedFill, EnrichmentStore, FillLookup
from leadflow_kit.platform import Platform


class FakeEnrichmentStore(EnrichmentStore):
    """The store's fill and matching methods over dicts; the admin writes are not faked (no handler uses them)."""

    def __init__(self) -> None:
        self.accounts: dict[str, AccountRecord] = {}
        self.directory_version_number = 0
        # Every fill saved, by its captured lead id; each lead's record is its latest fill's.
        self.fills: dict[str, EnrichedFill] = {}
        self.leads: dict[str, EnrichedFill] = {}
        self.locked_emails: list[str] = []
        # How many statements the real store would have run for what was asked of this one.
        self.statements = 0

    def add_account(self, account_id: str, name: str, *domains: str, **facts: Any) -> AccountRecord:
        """An account as stored, unchecked (an older import may have given it any domain)."""
        record = AccountRecord(account_id, name, tuple(domains), facts.get("industry"), facts.get("employee_count"),
                               facts.get("annual_revenue"), facts.get("country"), facts.get("owner_rep_id"),
                               facts.get("tier"))
        self.accounts[account_id] = record
        self.directory_version_number += 1
        return record

    def fill_count(self, lead_id: str) -> int:
        return sum(1 for fill in self.fills.values() if fill.lead_id == lead_id)

    async def lock_emails(self, session: AsyncSession, emails: Sequence[str]) -> None:
        self.locked_emails.extend(emails)
        self.statements += 1 if emails else 0

    async def look_up_fills(self, session: AsyncSession,
                            fills: Sequence[tuple[str, str | None]]) -> list[FillLookup]:
        self.statements += 1
        return [self._look_up_fill(captured_lead_id, email) for captured_lead_id, email in fills]

    def _look_up_fill(self, captured_lead_id: str, email: str | None) -> FillLookup:
        already = self.fills.get(captured_lead_id)
        lead = next((lead for lead in self.leads.values() if email is not None and lead.email == email), None)
        known = KnownLead(lead.lead_id, lead.original, dict(lead.custom_fields)) if lead is not None else None
        return FillLookup(already.lead_id if already else None, self.directory_version_number, known)

    async def save_fills(self, session: AsyncSession, fills: Sequence[EnrichedFill]) -> None:
        self.statements += 1 if fills else 0
        for fill in fills:
            assert fill.merged == (fill.lead_id in self.leads), "a merge needs the lead, a new lead must be new"
            assert fill.captured_lead_id not in self.fills, "a fill is saved once"
            self.fills[fill.captured_lead_id] = fill
            # The lead keeps the email it was created with.
            self.leads[fill.lead_id] = dataclasses.replace(fill, email=self.leads[fill.lead_id].email) \
                if fill.merged else fill

    async def accounts_by_domain(self, session: AsyncSession, domains: list[str]) -> dict[str, AccountRecord]:
        self.statements += 1
        return {domain: record for record in self.accounts.values() for domain in record.domains
                if domain in domains}

    async def account_records(self, session: AsyncSession, account_ids: list[str]) -> dict[str, AccountRecord]:
        self.statements += 1
        return {account_id: self.accounts[account_id] for account_id in account_ids if account_id in self.accounts}

    async def directory_version(self, session: AsyncSession) -> int | None:
        return self.directory_version_number

    async def account_name_keys(self, session: AsyncSession) -> list[tuple[str, str]]:
        return [(record.id, account_name_key(record.name)) for record in self.accounts.values()]


def fake_deps(store: FakeEnrichmentStore, provider: HttpFirmographicsProvider | None = None,
              **settings: Any) -> Deps:
    """Enrichment's deps over ``store``; the platform is built but never connects."""
    values = Settings(environment="test", **settings)
    platform = Platform.build(values)
    return Deps(platform=platform, settings=values,
                metrics=EnrichmentMetrics(values.service_name, platform.metrics.registry),
                store=store, directory=AccountDirectory(store, values.fuzzy_match_threshold), provider=provider)


def captured(lead_id: str | None = None, custom_fields: dict[str, str] | None = None,
             **contact: Any) -> Event[LeadCaptured]:
    """A lead.captured as capture publishes it."""
    lead_id = lead_id or str(uuid.uuid4())
    now = datetime(2026, 1, 5, 8, 59, tzinfo=UTC)
    data = LeadCaptured(lead_id=lead_id, form_key="demo", submitted_at=now, contact=LeadContact(**contact),
                        custom_fields=custom_fields or {})
    return new_event(data, source="capture", subject=lead_id, lead_captured_at=now)
