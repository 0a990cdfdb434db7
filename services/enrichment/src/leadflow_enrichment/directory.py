"""The account directory: domain lookups through the database index, fuzzy company-name matching over an
in-memory name index that each replica reloads when the directory's version moves."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import AccountMatch, LeadProfile
from leadflow_enrichment import normalize
from leadflow_enrichment.domain import AccountRecord
from leadflow_enrichment.store import EnrichmentStore


@dataclass(frozen=True)
class Matched:
    account: AccountRecord
    match: AccountMatch


class NameIndex:
    """Company-name keys with an inverted token index, so fuzzy matching scores a few candidates, not all."""

    def __init__(self, entries: Iterable[tuple[str, str]] = ()) -> None:
        self.ids: list[str] = []
        self.keys: list[str] = []
        self.by_token: dict[str, list[int]] = defaultdict(list)
        for account_id, key in entries:
            position = len(self.ids)
            self.ids.append(account_id)
            self.keys.append(key)
            for token in set(key.split()):
                self.by_token[token].append(position)

    def best(self, key: str, threshold: float) -> tuple[str, float] | None:
        """The account whose name key scores highest (token_sort_ratio, 0-100) at or above ``threshold``."""
        if not self.keys:
            return None
        candidates = sorted({p for token in set(key.split()) for p in self.by_token.get(token, ())})
        found = None
        if candidates:
            found = process.extractOne(key, {p: self.keys[p] for p in candidates}, scorer=fuzz.token_sort_ratio,
                                       score_cutoff=threshold)
        if found is None:
            # A misspelt single word shares no token with the right name; a C++ pass over all names is cheap.
            found = process.extractOne(key, self.keys, scorer=fuzz.token_sort_ratio, score_cutoff=threshold)
        if found is None:
            return None
        _, score, position = found
        return self.ids[int(position)], float(score)


class AccountDirectory:
    def __init__(self, store: EnrichmentStore, threshold: float) -> None:
        self.store = store
        self.threshold = threshold
        self._index = NameIndex()
        self._version: int | None = None
        self._reload = asyncio.Lock()

    async def match_lead(self, session: AsyncSession, profile: LeadProfile,
                         version: int | None = None) -> Matched | None:
        """By the website's domain, then the mailbox's, then by the company name. A free or disposable
        mail domain is never matched, even where an older import gave one to an account."""
        candidates = (profile.company_domain, normalize.registrable_domain(profile.email_domain))
        domains = [d for d in candidates if d and not normalize.is_mailbox_provider(d)]
        return await self.match(session, domains, normalize.company_key(profile.company), version=version)

    async def by_domain(self, session: AsyncSession, domains: Iterable[str]) -> tuple[AccountRecord, str] | None:
        wanted = [d for d in dict.fromkeys(domains) if d]
        if not wanted:
            return None
        by_domain = await self.store.accounts_by_domain(session, wanted)
        for domain in wanted:
            if domain in by_domain:
                return by_domain[domain], domain
        return None

    async def by_name(self, session: AsyncSession, key: str | None,
                      version: int | None = None) -> tuple[AccountRecord, float] | None:
        if not key:
            return None
        index = await self._current_index(session, version)
        best = index.best(key, self.threshold)
        if best is None:
            return None
        record = await self.store.account_record(session, best[0])
        return (record, best[1] / 100) if record is not None else None

    async def match(self, session: AsyncSession, domains: Iterable[str], name_key: str | None,
                    *, version: int | None = None) -> Matched | None:
        """``version``: the directory's version when the caller read it in this transaction already."""
        hit = await self.by_domain(session, domains)
        if hit is not None:
            record, domain = hit
            return Matched(record, record.match("domain", 1.0, domain))
        named = await self.by_name(session, name_key, version)
        if named is not None:
            record, confidence = named
            return Matched(record, record.match("fuzzy_name", confidence, None))
        return None

    async def _current_index(self, session: AsyncSession, version: int | None = None) -> NameIndex:
        if version is None:
            version = await self.store.directory_version(session)
            if version is None:
                raise LookupError("the account_directory row is missing")
        if version == self._version:
            return self._index
        async with self._reload:
            if version != self._version:
                self._index = NameIndex(await self.store.account_name_keys(session))
                self._version = version
        return self._index
