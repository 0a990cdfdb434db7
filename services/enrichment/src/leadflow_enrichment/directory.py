"""The account directory: domain lookups through the database index, fuzzy company-name matching over an
in-memory name index that each replica reloads when the directory's version moves."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
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


def _match_domains(profile: LeadProfile) -> list[str]:
    candidates = (profile.company_domain, normalize.registrable_domain(profile.email_domain))
    return list(dict.fromkeys(d for d in candidates if d and not normalize.is_mailbox_provider(d)))


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
        [matched] = await self.match_leads(session, [profile], version)
        return matched

    async def match_leads(self, session: AsyncSession, profiles: Sequence[LeadProfile],
                          version: int | None = None) -> list[Matched | None]:
        """``match_lead`` for each profile, with one read of the domains and one of the named accounts
        for all of them. ``version``: the directory's version when the caller read it in this transaction."""
        wanted = [_match_domains(profile) for profile in profiles]
        every_domain = list(dict.fromkeys(d for domains in wanted for d in domains))
        by_domain = await self.store.accounts_by_domain(session, every_domain) if every_domain else {}
        found: list[Matched | None] = []
        named: dict[int, tuple[str, float]] = {}  # position -> (account id, score 0-100)
        index: NameIndex | None = None
        for position, (profile, domains) in enumerate(zip(profiles, wanted, strict=True)):
            hit = next((d for d in domains if d in by_domain), None)
            found.append(Matched(by_domain[hit], by_domain[hit].match("domain", 1.0, hit)) if hit else None)
            key = normalize.company_key(profile.company)
            if hit is None and key:
                if index is None:
                    index = await self._current_index(session, version)
                best = index.best(key, self.threshold)
                if best is not None:
                    named[position] = best
        records = await self.store.account_records(session, sorted({i for i, _ in named.values()})) if named else {}
        for position, (account_id, score) in named.items():
            record = records.get(account_id)
            if record is not None:
                found[position] = Matched(record, record.match("fuzzy_name", score / 100, None))
        return found

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
