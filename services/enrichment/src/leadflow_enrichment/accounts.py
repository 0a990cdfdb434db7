"""The account directory's writes: one account at a time from the admin API, or thousands from a CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_enrichment import normalize
from leadflow_enrichment.directory import bump_version
from leadflow_enrichment.tables import account, account_domain
from leadflow_kit.errors import FieldError

CHUNK = 1000


def _domain(value: str) -> str:
    cleaned = normalize.registrable_domain(value)
    if cleaned is None:
        raise ValueError(f"'{value}' is not a domain with a public suffix")
    if normalize.is_mailbox_provider(cleaned):
        # One dirty CRM import would otherwise hand every lead of that mail service to one owner.
        raise ValueError(f"'{cleaned}' is a free or disposable mail domain; it cannot identify an account")
    return cleaned


def _clean_domains(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return list(dict.fromkeys(_domain(v) for v in value if v.strip()))


def _clean_country(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    code = normalize.normalize_country(value)
    if code is None:
        raise ValueError(f"'{value}' is not a country name or ISO code")
    return code


class AccountFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=255, examples=["Acme Rockets, Inc."])
    domains: list[str] = Field(default_factory=list, max_length=50, examples=[["acme.com"]])
    industry: str | None = Field(default=None, max_length=255, examples=["Software"])
    employee_count: int | None = Field(default=None, ge=0, examples=[1200])
    annual_revenue: float | None = Field(default=None, ge=0, examples=[250_000_000])
    country: str | None = Field(default=None, description="A name or ISO code; stored as ISO 3166-1 alpha-2",
                                examples=["US"])
    owner_rep_id: str | None = Field(default=None, max_length=64, examples=["rep-ada"])
    tier: str | None = Field(default=None, max_length=32, examples=["enterprise"])

    _domains = field_validator("domains")(classmethod(lambda cls, v: _clean_domains(v)))
    _country = field_validator("country")(classmethod(lambda cls, v: _clean_country(v)))


class AccountCreate(AccountFields):
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                           description="Your id for the account (a CRM id); generated when absent")


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"employee_count": 1200, "tier": "enterprise", "owner_rep_id": "rep-ada"}]})

    name: str | None = Field(default=None, min_length=1, max_length=255)
    domains: list[str] | None = Field(default=None, max_length=50)
    industry: str | None = Field(default=None, max_length=255)
    employee_count: int | None = Field(default=None, ge=0)
    annual_revenue: float | None = Field(default=None, ge=0)
    country: str | None = None
    owner_rep_id: str | None = Field(default=None, max_length=64)
    tier: str | None = Field(default=None, max_length=32)

    _domains = field_validator("domains")(classmethod(lambda cls, v: _clean_domains(v)))
    _country = field_validator("country")(classmethod(lambda cls, v: _clean_country(v)))


class AccountPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "acct-acme", "name": "Acme", "domains": ["acme.com"], "industry": "Software",
        "employee_count": 1200, "annual_revenue": 250000000.0, "country": "US", "owner_rep_id": "rep-ada",
        "tier": "enterprise", "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z",
    }]})

    id: str
    name: str
    domains: list[str]
    industry: str | None
    employee_count: int | None
    annual_revenue: float | None
    country: str | None
    owner_rep_id: str | None
    tier: str | None
    created_at: datetime
    updated_at: datetime


class RowError(BaseModel):
    line: int
    field: str
    code: str
    message: str


class ImportResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "created": 9998, "updated": 1, "rejected": 1,
        "errors": [{"line": 7, "field": "country", "code": "value_error",
                    "message": "Value error, 'Atlantis' is not a country name or ISO code"}]}]})

    created: int
    updated: int
    rejected: int
    errors: list[RowError] = Field(default_factory=list, description="At most the first 100 rejected rows")


def public(row: Any) -> AccountPublic:
    return AccountPublic.model_validate(row, from_attributes=True)


def _values(fields: AccountFields, account_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": account_id, "name": fields.name, "name_key": normalize.company_key(fields.name) or fields.name.lower(),
        "domains": fields.domains, "industry": fields.industry, "employee_count": fields.employee_count,
        "annual_revenue": fields.annual_revenue, "country": fields.country, "owner_rep_id": fields.owner_rep_id,
        "tier": fields.tier, "updated_at": now,
    }


async def upsert_accounts(session: AsyncSession, items: Sequence[AccountCreate], now: datetime) -> tuple[int, int]:
    """Create or replace accounts (by id, else by a domain they already own); returns (created, updated).

    A domain belongs to one account: the last account given it keeps it."""
    if not items:
        return 0, 0
    all_domains = sorted({d for item in items for d in item.domains})
    owner_of: dict[str, str] = {}
    for chunk in _chunks(all_domains):
        rows = (await session.execute(select(account_domain).where(account_domain.c.domain.in_(chunk)))).all()
        owner_of.update({r.domain: r.account_id for r in rows})
    values: dict[str, dict[str, Any]] = {}
    for item in items:
        account_id = item.id or next((owner_of[d] for d in item.domains if d in owner_of), None) \
            or f"acct-{uuid.uuid4().hex[:16]}"
        values[account_id] = _values(item, account_id, now)
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
    await _drop_moved_domains(session, pairs, owner_of, set(ids))
    await bump_version(session)
    return len(ids) - len(existing & set(ids)), len(existing & set(ids))


async def _drop_moved_domains(session: AsyncSession, pairs: dict[str, str], owner_before: dict[str, str],
                              replaced: set[str]) -> None:
    """Keep ``account.domains`` in step with ``account_domain`` when a domain moved to another account."""
    moved: dict[str, set[str]] = {}
    for domain, previous in owner_before.items():
        if previous not in replaced and pairs.get(domain, previous) != previous:
            moved.setdefault(previous, set()).add(domain)
    for account_id, lost in moved.items():
        kept = [d for d in await _domains_of(session, account_id) if d not in lost]
        await session.execute(account.update().where(account.c.id == account_id).values(domains=kept))


async def _domains_of(session: AsyncSession, account_id: str) -> list[str]:
    return list((await session.execute(select(account.c.domains).where(account.c.id == account_id))).scalar_one())


async def update_account(session: AsyncSession, account_id: str, changes: AccountUpdate,
                         now: datetime) -> AccountPublic | None:
    row = (await session.execute(select(account).where(account.c.id == account_id).with_for_update())).first()
    if row is None:
        return None
    merged = AccountCreate.model_validate({**public(row).model_dump(include=set(AccountFields.model_fields)),
                                           **changes.model_dump(exclude_unset=True), "id": account_id})
    await upsert_accounts(session, [merged], now)
    return await get_account(session, account_id)


async def get_account(session: AsyncSession, account_id: str) -> AccountPublic | None:
    row = (await session.execute(select(account).where(account.c.id == account_id))).first()
    return public(row) if row is not None else None


async def delete_account(session: AsyncSession, account_id: str) -> bool:
    removed = (await session.execute(delete(account).where(account.c.id == account_id).returning(account.c.id))
               ).first()
    if removed is not None:
        await bump_version(session)
    return removed is not None


async def list_accounts(session: AsyncSession, q: str | None, limit: int, offset: int) -> list[AccountPublic]:
    query = select(account).order_by(account.c.name, account.c.id).limit(limit).offset(offset)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(or_(func.lower(account.c.name).like(like), account.c.domains.contains([q.lower()])))
    return [public(r) for r in (await session.execute(query)).all()]


# ---- CSV -------------------------------------------------------------------------------------

CSV_COLUMNS = ("id", "name", "domains", "industry", "employee_count", "annual_revenue", "country",
               "owner_rep_id", "tier")
_HEADER_ALIASES = {"domain": "domains", "website": "domains", "employees": "employee_count",
                   "revenue": "annual_revenue", "owner": "owner_rep_id", "account_id": "id", "account_name": "name"}


@dataclass
class ParsedCsv:
    accounts: list[AccountCreate] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rejected: int = 0


class CsvUnreadable(ValueError):
    pass


def parse_accounts_csv(text: str) -> ParsedCsv:
    """One account per row; ``domains`` may hold several, separated by ``;``, ``|`` or spaces."""
    if "\x00" in text:
        raise CsvUnreadable("the CSV contains NUL characters; is it a text file?")
    try:
        return _parse_rows(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise CsvUnreadable(f"the CSV is malformed: {exc}") from None


def _parse_rows(reader: csv.DictReader[str]) -> ParsedCsv:
    if not reader.fieldnames:
        raise CsvUnreadable("the CSV has no header row")
    header = {h: _HEADER_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in reader.fieldnames if h}
    if "name" not in header.values():
        raise CsvUnreadable("the CSV needs a 'name' column; known columns: " + ", ".join(CSV_COLUMNS))
    parsed = ParsedCsv()
    for line, raw in enumerate(reader, start=2):
        row: dict[str, Any] = {}
        for column, value in raw.items():
            name = header.get(column or "")
            if name not in CSV_COLUMNS or value is None or not str(value).strip():
                continue
            row[name] = _split_domains(value) if name == "domains" else value.strip()
        if not row:
            continue
        try:
            parsed.accounts.append(AccountCreate.model_validate(_numbers(row)))
        except ValidationError as exc:
            parsed.rejected += 1
            if len(parsed.errors) < 100:
                parsed.errors += [RowError(line=line, field=".".join(str(p) for p in e["loc"]) or "row",
                                           code=e["type"], message=e["msg"]) for e in exc.errors()]
    return parsed


def _split_domains(value: str) -> list[str]:
    return [d for d in value.replace(";", " ").replace("|", " ").replace(",", " ").split() if d]


def _numbers(row: dict[str, Any]) -> dict[str, Any]:
    for name in ("employee_count", "annual_revenue"):
        if name in row:
            number = normalize.parse_number(row[name])
            if number is not None:
                row[name] = int(number) if name == "employee_count" else number
    return row


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def to_field_errors(errors: list[RowError]) -> list[FieldError]:
    return [FieldError(field=f"line {e.line}: {e.field}", code=e.code, message=e.message) for e in errors]
