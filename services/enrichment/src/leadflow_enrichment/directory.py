"""The account directory: domain lookups through the database index, fuzzy company-name matching over an
in-memory name index that each replica reloads when the directory's version moves."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from rapidfuzz import fuzz, process
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import AccountMatch
from leadflow_enrichment.domain import Firmographics
from leadflow_enrichment.tables import account_directory
from leadflow_kit.db import driver_connection

ACCOUNT_COLUMNS = "a.id, a.name, a.domains, a.industry, a.employee_count, a.annual_revenue, a.country, " \
                  "a.owner_rep_id, a.tier"


@dataclass(frozen=True)
class AccountRecord:
    id: str
    name: str
    domains: tuple[str, ...]
    industry: str | None
    employee_count: int | None
    annual_revenue: float | None
    country: str | None
    owner_rep_id: str | None
    tier: str | None

    @classmethod
    def of(cls, row: asyncpg.Record | Mapping[str, Any]) -> AccountRecord:
        return cls(row["id"], row["name"], tuple(row["domains"] or ()), row["industry"], row["employee_count"],
                   row["annual_revenue"], row["country"], row["owner_rep_id"], row["tier"])

    def match(self, method: str, confidence: float, domain: str | None) -> AccountMatch:
        return AccountMatch(
            account_id=self.id, name=self.name, domain=domain or (self.domains[0] if self.domains else None),
            method=method,
            confidence=round(confidence, 4), owner_rep_id=self.owner_rep_id, tier=self.tier,
        )

    def firmographics(self) -> Firmographics:
        return Firmographics(self.name, self.industry, self.employee_count, self.annual_revenue, self.country)


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
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._index = NameIndex()
        self._version: int | None = None
        self._reload = asyncio.Lock()

    async def by_domain(self, session: AsyncSession, domains: Iterable[str]) -> tuple[AccountRecord, str] | None:
        wanted = [d for d in dict.fromkeys(domains) if d]
        if not wanted:
            return None
        rows = await (await driver_connection(session)).fetch(
            f"SELECT {ACCOUNT_COLUMNS}, d.domain FROM account a JOIN account_domain d ON d.account_id = a.id "
            "WHERE d.domain = ANY($1::text[])",
            wanted,
        )
        by_domain = {row["domain"]: row for row in rows}
        for domain in wanted:
            if domain in by_domain:
                return AccountRecord.of(by_domain[domain]), domain
        return None

    async def by_name(self, session: AsyncSession, key: str | None,
                      version: int | None = None) -> tuple[AccountRecord, float] | None:
        if not key:
            return None
        index = await self._current_index(session, version)
        best = index.best(key, self.threshold)
        if best is None:
            return None
        row = await (await driver_connection(session)).fetchrow(
            f"SELECT {ACCOUNT_COLUMNS} FROM account a WHERE a.id = $1", best[0])
        return (AccountRecord.of(row), best[1] / 100) if row is not None else None

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
        conn = await driver_connection(session)
        if version is None:
            version = await conn.fetchval("SELECT version FROM account_directory WHERE id = 1")
            if version is None:
                raise LookupError("the account_directory row is missing")
        if version == self._version:
            return self._index
        async with self._reload:
            if version != self._version:
                rows = await conn.fetch("SELECT id, name_key FROM account")
                self._index = NameIndex((r["id"], r["name_key"]) for r in rows)
                self._version = version
        return self._index


async def bump_version(session: AsyncSession) -> None:
    """Called in the transaction of every directory change, so replicas reload their name index."""
    await session.execute(
        update(account_directory).where(account_directory.c.id == 1).values(version=account_directory.c.version + 1)
    )
