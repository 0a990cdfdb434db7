"""Every SQL statement of enrichment: the fill's hot path (asyncpg), the account directory's reads for
matching, the enriched-lead read and the directory's admin writes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import AccountMatch, DataQuality, LeadContact, LeadProfile
from leadflow_enrichment import quality
from leadflow_enrichment.accounts import AccountCreate, AccountFields, AccountPublic, AccountUpdate
from leadflow_enrichment.domain import AccountRecord, KnownLead, account_name_key
from leadflow_enrichment.tables import account, account_directory, account_domain, lead, lead_fill
from leadflow_kit.db import driver_connection

CHUNK = 1000

# The locks of a batch's emails, in one order for every transaction (the lock ids' order: two batches never
# deadlock); PostgreSQL takes them row by row after the ORDER BY.
LOCK_EMAILS = """
SELECT pg_advisory_xact_lock(k)
FROM (SELECT DISTINCT hashtextextended('lead-email:' || e, 0) AS k FROM unnest($1::text[]) AS e) AS keys
ORDER BY k"""
# After the emails' locks, in a statement of its own so it sees what the locks waited for: for each fill,
# in the order given, whether it was enriched before, the lead of its email (locked), and the directory version.
LOOK_UP_FILLS = """
SELECT (SELECT lead_id FROM lead_fill WHERE captured_lead_id = f.captured_lead_id) AS already_lead_id,
       (SELECT version FROM account_directory WHERE id = 1) AS directory_version,
       existing.id AS existing_id,
       existing.original AS existing_original,
       existing.custom_fields AS existing_custom_fields
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS f(captured_lead_id, email, n)
LEFT JOIN LATERAL (SELECT id, original, custom_fields FROM lead WHERE email = f.email FOR UPDATE) AS existing ON true
ORDER BY f.n"""
# A batch's leads (created, or merged into: one row each, as its last fill left it) and its fills, in one
# statement. The fills' foreign keys are checked at its end, when the created leads exist.
SAVE_FILLS = """
WITH written AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                         $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bool[],
                         $13::text[], $14::float8[], $15::int[], $16::bool[])
        AS w(id, email, form_key, custom_fields, first_submitted_at, last_submitted_at, enriched_at, original,
             profile, account, quality, partial, partial_reasons, enrichment_ms, fills, merged)
), created AS (
    INSERT INTO lead (id, email, form_key, custom_fields, first_submitted_at, last_submitted_at, created_at,
                      original, profile, account, quality, partial, partial_reasons, enrichment_ms, updated_at,
                      fill_count)
    SELECT id, email, form_key, custom_fields::jsonb, first_submitted_at, last_submitted_at, enriched_at,
           original::jsonb, profile::jsonb, account::jsonb, quality::jsonb, partial, partial_reasons::jsonb,
           enrichment_ms, enriched_at, fills
    FROM written WHERE NOT merged
), updated AS (
    UPDATE lead SET fill_count = lead.fill_count + w.fills,
                    last_submitted_at = greatest(lead.last_submitted_at, w.last_submitted_at),
                    custom_fields = w.custom_fields::jsonb, original = w.original::jsonb, profile = w.profile::jsonb,
                    account = w.account::jsonb, quality = w.quality::jsonb, partial = w.partial,
                    partial_reasons = w.partial_reasons::jsonb, enrichment_ms = w.enrichment_ms,
                    updated_at = w.enriched_at
    FROM written AS w
    WHERE w.merged AND lead.id = w.id
)
INSERT INTO lead_fill (captured_lead_id, lead_id, form_key, original, submitted_at, duplicate, enriched_at,
                       source, reasons, provider_outcome)
SELECT captured_lead_id, lead_id, form_key, original::jsonb, submitted_at, duplicate, enriched_at,
       source, reasons::jsonb, provider_outcome
FROM unnest($17::text[], $18::text[], $19::text[], $20::text[], $21::timestamptz[], $22::bool[], $23::timestamptz[],
            $24::text[], $25::text[], $26::text[])
    AS f(captured_lead_id, lead_id, form_key, original, submitted_at, duplicate, enriched_at, source, reasons,
         provider_outcome)"""

# ---- the data-quality report: the fills of [from, to) counted per form, source and bucket ------------------
# $3 is the bucket's width (day, week, month: date_trunc's units, checked by the route) or NULL for the window.
_FILLED = ",\n       ".join(
    f"count(*) FILTER (WHERE nullif(btrim(original->>'{name}'), '') IS NOT NULL) AS filled_{name}"
    for name in quality.CONTACT_FIELDS)
_FLAGGED = ",\n       ".join(
    f"count(*) FILTER (WHERE reasons ? '{reason}') AS {name}" for name, reason in quality.FLAGS.items())
FILL_COUNTS = f"""
SELECT form_key AS form, coalesce(source, 'direct') AS source,
       CASE WHEN $3::text IS NULL THEN NULL ELSE date_trunc($3::text, submitted_at, 'UTC') END AS bucket,
       count(*) AS fills,
       count(*) FILTER (WHERE duplicate) AS duplicates,
       {_FLAGGED},
       count(*) FILTER (WHERE NOT reasons ? 'no_account_match') AS account_matched,
       count(provider_outcome) AS provider_lookups,
       count(*) FILTER (WHERE provider_outcome = ANY($4::text[])) AS provider_successes,
       {_FILLED}
FROM lead_fill
WHERE submitted_at >= $1 AND submitted_at < $2
GROUP BY 1, 2, 3"""

ACCOUNT_COLUMNS = "a.id, a.name, a.domains, a.industry, a.employee_count, a.annual_revenue, a.country, " \
                  "a.owner_rep_id, a.tier"


@dataclass(frozen=True)
class FillLookup:
    """What the fill's transaction finds once it holds the email's lock."""

    # The lead this fill was enriched into before (capture published it again), if it was.
    already_lead_id: str | None
    directory_version: int | None
    # The lead of the same email, locked until the transaction ends.
    known: KnownLead | None


@dataclass(frozen=True)
class EnrichedFill:
    """One enriched fill as it is written: a new lead, or a merge into the lead of the same email."""

    captured_lead_id: str
    lead_id: str
    merged: bool
    email: str | None
    form_key: str
    submitted_at: datetime
    enriched_at: datetime
    # The lead's record after this fill, and the fill as the person sent it.
    original: LeadContact
    custom_fields: dict[str, str]
    profile: LeadProfile
    account: AccountMatch | None
    quality: DataQuality
    partial_reasons: list[str]
    enrichment_ms: float
    fill: LeadContact
    source: str | None = None
    provider_outcome: str | None = None

    def fill_columns(self) -> tuple[Any, ...]:
        """This fill's row of ``lead_fill``, as ``SAVE_FILLS`` takes it ($17-$26)."""
        return (self.captured_lead_id, self.lead_id, self.form_key, self.fill.model_dump_json(),
                self.submitted_at, self.merged, self.enriched_at, self.source, json.dumps(self.quality.reasons),
                self.provider_outcome)


def _lead_columns(fills: Sequence[EnrichedFill]) -> tuple[Any, ...]:
    """One lead's row as a batch's fills of it leave it ($1-$16 of ``SAVE_FILLS``): created by the first
    unless that one merged, with what the last fill made of it, as the fills one after another would."""
    first, last = fills[0], fills[-1]
    # JSON null, not SQL NULL, for no account: what the column held when SQLAlchemy wrote it.
    return (
        first.lead_id, first.email, first.form_key, json.dumps(last.custom_fields), first.submitted_at,
        max(fill.submitted_at for fill in fills), last.enriched_at,
        last.original.model_dump_json(), last.profile.model_dump_json(),
        last.account.model_dump_json() if last.account else "null",
        last.quality.model_dump_json(), bool(last.partial_reasons),
        json.dumps(last.partial_reasons), last.enrichment_ms, len(fills), first.merged,
    )


@dataclass(frozen=True)
class FillRecord:
    captured_lead_id: str
    form_key: str
    submitted_at: datetime
    duplicate: bool
    original: LeadContact


@dataclass(frozen=True)
class LeadRecord:
    """A lead as enrichment stored it, with every fill merged into it (oldest first)."""

    id: str
    form_key: str
    original: LeadContact
    profile: LeadProfile
    account: AccountMatch | None
    quality: DataQuality
    partial: bool
    partial_reasons: list[str]
    fill_count: int
    enrichment_ms: float | None
    first_submitted_at: datetime
    last_submitted_at: datetime
    updated_at: datetime
    fills: list[FillRecord]


def _account_record(row: asyncpg.Record) -> AccountRecord:
    return AccountRecord(row["id"], row["name"], tuple(row["domains"] or ()), row["industry"],
                         row["employee_count"], row["annual_revenue"], row["country"], row["owner_rep_id"],
                         row["tier"])


def _known_lead(row: asyncpg.Record) -> KnownLead | None:
    if row["existing_id"] is None:
        return None
    return KnownLead(row["existing_id"], LeadContact.model_validate(row["existing_original"]),
                     dict(row["existing_custom_fields"] or {}))


def _public(row: Any) -> AccountPublic:
    return AccountPublic.model_validate(row, from_attributes=True)


def _account_values(fields: AccountFields, account_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": account_id, "name": fields.name, "name_key": account_name_key(fields.name),
        "domains": fields.domains, "industry": fields.industry, "employee_count": fields.employee_count,
        "annual_revenue": fields.annual_revenue, "country": fields.country, "owner_rep_id": fields.owner_rep_id,
        "tier": fields.tier, "updated_at": now,
    }


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


class EnrichmentStore:
    # ---- a fill (the consumer's hot path) --------------------------------------------------------

    async def lock_emails(self, session: AsyncSession, emails: Sequence[str]) -> None:
        """Until the transaction ends: two fills of one person on different partitions must not both
        create the lead."""
        if emails:
            await (await driver_connection(session)).execute(LOCK_EMAILS, list(emails))

    async def look_up_fills(self, session: AsyncSession,
                            fills: Sequence[tuple[str, str | None]]) -> list[FillLookup]:
        """For each (captured lead id, email) in order, under the emails' locks."""
        rows = await (await driver_connection(session)).fetch(
            LOOK_UP_FILLS, [captured for captured, _ in fills], [email for _, email in fills])
        return [FillLookup(row["already_lead_id"], row["directory_version"], _known_lead(row)) for row in rows]

    async def save_fills(self, session: AsyncSession, fills: Sequence[EnrichedFill]) -> None:
        """The leads (created, or merged into) and the fills linked to them, in one statement; ``fills`` in
        the order they were enriched."""
        if not fills:
            return
        by_lead: dict[str, list[EnrichedFill]] = {}
        for fill in fills:
            by_lead.setdefault(fill.lead_id, []).append(fill)
        leads = list(zip(*(_lead_columns(of_lead) for of_lead in by_lead.values()), strict=True))
        rows = list(zip(*(fill.fill_columns() for fill in fills), strict=True))
        await (await driver_connection(session)).execute(SAVE_FILLS, *leads, *rows)

    # ---- the data-quality report -----------------------------------------------------------------

    async def fill_counts(self, session: AsyncSession, start: datetime, end: datetime,
                          interval: str | None) -> list[quality.FillCounts]:
        """The fills submitted in [start, end) counted per form, source and UTC bucket (None: the window)."""
        rows = await (await driver_connection(session)).fetch(
            FILL_COUNTS, start, end, interval, list(quality.PROVIDER_SUCCESSES))
        return [quality.FillCounts(
            form=row["form"], source=row["source"], bucket=row["bucket"], fills=row["fills"],
            duplicates=row["duplicates"], **{name: row[name] for name in quality.FLAGS},
            account_matched=row["account_matched"], provider_lookups=row["provider_lookups"],
            provider_successes=row["provider_successes"],
            filled={name: row[f"filled_{name}"] for name in quality.CONTACT_FIELDS}) for row in rows]

    # ---- the account directory, for matching -----------------------------------------------------

    async def accounts_by_domain(self, session: AsyncSession, domains: list[str]) -> dict[str, AccountRecord]:
        """The accounts owning any of ``domains``, by domain."""
        rows = await (await driver_connection(session)).fetch(
            f"SELECT {ACCOUNT_COLUMNS}, d.domain FROM account a JOIN account_domain d ON d.account_id = a.id "
            "WHERE d.domain = ANY($1::text[])",
            domains,
        )
        return {row["domain"]: _account_record(row) for row in rows}

    async def account_records(self, session: AsyncSession, account_ids: list[str]) -> dict[str, AccountRecord]:
        rows = await (await driver_connection(session)).fetch(
            f"SELECT {ACCOUNT_COLUMNS} FROM account a WHERE a.id = ANY($1::text[])", account_ids)
        return {row["id"]: _account_record(row) for row in rows}

    async def directory_version(self, session: AsyncSession) -> int | None:
        """None when the directory's version row is missing."""
        version: int | None = await (await driver_connection(session)).fetchval(
            "SELECT version FROM account_directory WHERE id = 1")
        return version

    async def account_name_keys(self, session: AsyncSession) -> list[tuple[str, str]]:
        """Every account's (id, name key), for the fuzzy-name index."""
        rows = await (await driver_connection(session)).fetch("SELECT id, name_key FROM account")
        return [(row["id"], row["name_key"]) for row in rows]

    # ---- the enriched lead (read) ----------------------------------------------------------------

    async def enriched_lead(self, session: AsyncSession, lead_id: str) -> LeadRecord | None:
        """The lead by its canonical id or the id of any fill merged into it."""
        canonical = (await session.execute(
            select(lead_fill.c.lead_id).where(lead_fill.c.captured_lead_id == lead_id))).scalar_one_or_none()
        row = (await session.execute(select(lead).where(lead.c.id == (canonical or lead_id)))).first()
        if row is None:
            return None
        fills = (await session.execute(
            select(lead_fill).where(lead_fill.c.lead_id == row.id).order_by(lead_fill.c.submitted_at))).all()
        return LeadRecord(
            id=row.id, form_key=row.form_key, original=LeadContact.model_validate(row.original),
            profile=LeadProfile.model_validate(row.profile),
            account=AccountMatch.model_validate(row.account) if row.account else None,
            quality=DataQuality.model_validate(row.quality), partial=row.partial,
            partial_reasons=row.partial_reasons, fill_count=row.fill_count, enrichment_ms=row.enrichment_ms,
            first_submitted_at=row.first_submitted_at, last_submitted_at=row.last_submitted_at,
            updated_at=row.updated_at,
            fills=[FillRecord(f.captured_lead_id, f.form_key, f.submitted_at, f.duplicate,
                              LeadContact.model_validate(f.original)) for f in fills],
        )

    # ---- the account directory's admin writes ----------------------------------------------------

    async def upsert_accounts(self, session: AsyncSession, items: Sequence[AccountCreate],
                              now: datetime) -> tuple[int, int]:
        """Create or replace accounts (by id, else by a domain they already own); returns (created, updated).

        A domain belongs to one account: the last account given it keeps it."""
        if not items:
            return 0, 0
        owner_of = await self._domain_owners(session, sorted({d for item in items for d in item.domains}))
        values: dict[str, dict[str, Any]] = {}
        for item in items:
            account_id = item.id or next((owner_of[d] for d in item.domains if d in owner_of), None) \
                or f"acct-{uuid.uuid4().hex[:16]}"
            values[account_id] = _account_values(item, account_id, now)
        ids = list(values)
        existing: set[str] = set()
        for chunk in _chunks(ids):
            existing |= set((await session.execute(select(account.c.id).where(account.c.id.in_(chunk)))).scalars())
        rows_in = list(values.values())
        for chunk in _chunks(rows_in):
            statement = insert(account).values([{**v, "created_at": now} for v in chunk])
            await session.execute(statement.on_conflict_do_update(
                index_elements=[account.c.id],
                set_={c: statement.excluded[c] for c in chunk[0] if c not in ("id",)},
            ))
        for chunk in _chunks(ids):
            await session.execute(delete(account_domain).where(account_domain.c.account_id.in_(chunk)))
        pairs = {d: v["id"] for v in rows_in for d in v["domains"]}
        domain_rows = [{"domain": d, "account_id": a} for d, a in pairs.items()]
        for chunk in _chunks(domain_rows):
            statement = insert(account_domain).values(chunk)
            await session.execute(statement.on_conflict_do_update(
                index_elements=[account_domain.c.domain], set_={"account_id": statement.excluded.account_id}))
        await self._drop_moved_domains(session, pairs, owner_of, set(ids))
        await self.bump_directory_version(session)
        return len(ids) - len(existing & set(ids)), len(existing & set(ids))

    async def _domain_owners(self, session: AsyncSession, domains: Sequence[str]) -> dict[str, str]:
        owner_of: dict[str, str] = {}
        for chunk in _chunks(domains):
            rows = (await session.execute(select(account_domain).where(account_domain.c.domain.in_(chunk)))).all()
            owner_of.update({r.domain: r.account_id for r in rows})
        return owner_of

    async def _drop_moved_domains(self, session: AsyncSession, pairs: Mapping[str, str],
                                  owner_before: Mapping[str, str], replaced: set[str]) -> None:
        """Keep ``account.domains`` in step with ``account_domain`` when a domain moved to another account."""
        moved: dict[str, set[str]] = {}
        for domain, previous in owner_before.items():
            if previous not in replaced and pairs.get(domain, previous) != previous:
                moved.setdefault(previous, set()).add(domain)
        for account_id, lost in moved.items():
            domains = (await session.execute(select(account.c.domains).where(account.c.id == account_id))
                       ).scalar_one()
            kept = [d for d in domains if d not in lost]
            await session.execute(account.update().where(account.c.id == account_id).values(domains=kept))

    async def update_account(self, session: AsyncSession, account_id: str, changes: AccountUpdate,
                             now: datetime) -> AccountPublic | None:
        """None when there is no such account; raises ``ValidationError`` when the changed account is not
        a valid account (e.g. its name set to null)."""
        row = (await session.execute(select(account).where(account.c.id == account_id).with_for_update())).first()
        if row is None:
            return None
        merged = AccountCreate.model_validate({**_public(row).model_dump(include=set(AccountFields.model_fields)),
                                               **changes.model_dump(exclude_unset=True), "id": account_id})
        await self.upsert_accounts(session, [merged], now)
        return await self.get_account(session, account_id)

    async def get_account(self, session: AsyncSession, account_id: str) -> AccountPublic | None:
        row = (await session.execute(select(account).where(account.c.id == account_id))).first()
        return _public(row) if row is not None else None

    async def delete_account(self, session: AsyncSession, account_id: str) -> bool:
        removed = (await session.execute(delete(account).where(account.c.id == account_id).returning(account.c.id))
                   ).first()
        if removed is not None:
            await self.bump_directory_version(session)
        return removed is not None

    async def list_accounts(self, session: AsyncSession, q: str | None, limit: int,
                            offset: int) -> list[AccountPublic]:
        query = select(account).order_by(account.c.name, account.c.id).limit(limit).offset(offset)
        if q:
            like = f"%{q.lower()}%"
            query = query.where(or_(func.lower(account.c.name).like(like), account.c.domains.contains([q.lower()])))
        return [_public(r) for r in (await session.execute(query)).all()]

    async def bump_directory_version(self, session: AsyncSession) -> None:
        """In the transaction of every directory change, so replicas reload their name index."""
        await session.execute(update(account_directory).where(account_directory.c.id == 1)
                              .values(version=account_directory.c.version + 1))
