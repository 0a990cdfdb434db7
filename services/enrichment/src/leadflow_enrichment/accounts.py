"""The account directory's admin input: an account as the admin API takes and shows it, and thousands of them
read from a CSV (the writes are ``EnrichmentStore.upsert_accounts``)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leadflow_enrichment import normalize
from leadflow_kit.errors import FieldError


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


def to_field_errors(errors: list[RowError]) -> list[FieldError]:
    return [FieldError(field=f"line {e.line}: {e.field}", code=e.code, message=e.message) for e in errors]
