"""Marketing spend per campaign, source and period, and the currency rates the funnel's money converts at.

Admin API (sla:write to change, sla:read to look): ``/v1/admin/campaigns/spend`` one record at a time or as a
CSV import (all rows or none), ``/v1/admin/currency-rates`` a whole rate table at once, in force on every day or
from a day on (revenue.py says which amount converts at which table).
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from leadflow_contracts.money import Amount, CurrencyCode
from leadflow_kit.auth import require_scope
from leadflow_kit.bodies import body_limit
from leadflow_kit.errors import FieldError
from leadflow_sla.bootstrap import DepsDep
from leadflow_sla.revenue import ALWAYS_IN_FORCE, Rates, RateTable
from leadflow_sla.store import StoredSpend

router = APIRouter(prefix="/v1/admin", tags=["spend and currency rates"])

READ = [Depends(require_scope("sla:read"))]
WRITE = [Depends(require_scope("sla:write"))]

SPEND_EXAMPLE: dict[str, Any] = {"utm_campaign": "q4-webinar", "source": "linkedin", "period_from": "2026-10-01",
                 "period_to": "2026-10-31", "amount": "3100.00", "currency": "EUR"}
CSV_EXAMPLE = ("utm_campaign,source,period_from,period_to,amount,currency\r\n"
               "q4-webinar,linkedin,2026-10-01,2026-10-31,3100.00,EUR\r\n"
               "q4-webinar,google,2026-10-01,2026-12-31,9200,USD\r\n")
CSV_COLUMNS = ("utm_campaign", "source", "period_from", "period_to", "amount", "currency")
# How many row errors an import answers with (it stores nothing when there is any).
MAX_ROW_ERRORS = 100


class SpendCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SPEND_EXAMPLE]})

    utm_campaign: str = Field(min_length=1, max_length=255, description="As in the leads' utm_campaign")
    source: str = Field(min_length=1, max_length=255, description="As in the leads' utm_source, e.g. linkedin")
    period_from: date = Field(description="First day of the spend (UTC)")
    period_to: date = Field(description="Last day of the spend, included; the amount spreads evenly over the days")
    amount: Amount
    currency: CurrencyCode

    @field_validator("utm_campaign", "source")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("period_to")
    @classmethod
    def _not_before_from(cls, period_to: date, info: ValidationInfo) -> date:
        period_from = info.data.get("period_from")
        if period_from is not None and period_to < period_from:
            raise ValueError("period_to must not be before period_from")
        return period_to


class SpendPublic(SpendCreate):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "spd_4f1c2b3a9d8e7f60", **SPEND_EXAMPLE, "created_at": "2026-11-02T09:00:00Z"}]})

    id: str
    created_at: datetime


class SpendImported(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"imported": 2}]})

    imported: int


Rate = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=10, allow_inf_nan=False)]


class CurrencyRatesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"rates": {"EUR": "1.08", "GBP": "1.27"}},
        {"rates": {"EUR": "1.06", "GBP": "1.25"}, "effective_from": "2027-01-01"}]})

    rates: dict[CurrencyCode, Rate] = Field(
        max_length=200, description="What one unit of each currency is worth in the reporting currency; a "
                                    "currency left out has no rate in this table (its amounts are not counted)")
    effective_from: date | None = Field(
        default=None, gt=ALWAYS_IN_FORCE,
        description="The first day (UTC) this table is in force, until the next table's: a deal won on a day, "
                    "and a day's spend, convert at the table in force that day; open deals at today's. The "
                    "table of that day is replaced, the others stay. Without it, this table replaces every "
                    "table and is in force on every day")


class RateTablePublic(BaseModel):
    # Defaults only so the OpenAPI examples, which FastAPI writes without their nulls, stay valid; always sent.
    effective_from: date | None = Field(
        default=None,
        description="The first day it is in force; null: in force on every day before the first dated table")
    rates: dict[str, Decimal]


class CurrencyRates(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "reporting_currency": "USD", "on": "2026-12-06", "effective_from": None,
        "rates": {"EUR": "1.08", "GBP": "1.27"},
        "tables": [{"effective_from": None, "rates": {"EUR": "1.08", "GBP": "1.27"}},
                   {"effective_from": "2027-01-01", "rates": {"EUR": "1.06", "GBP": "1.25"}}]}]})

    reporting_currency: str
    on: date = Field(description="The day (UTC) `rates` are in force on")
    effective_from: date | None = Field(
        default=None,
        description="The first day of the table in force on `on`; null when it is in force on every day, "
                    "or no table is")
    rates: dict[str, Decimal] = Field(description="The table in force on `on` (empty when none is)")
    tables: list[RateTablePublic] = Field(description="Every table, by the day it comes into force")


@dataclass
class ParsedSpend:
    spends: list[SpendCreate] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)


def parse_spend_csv(text: str) -> ParsedSpend:
    """Every row a spend; each row at fault gives its errors as ``line N: column``."""
    parsed = ParsedSpend()
    if "\x00" in text:
        parsed.errors.append(FieldError(field="body", code="csv", message="the CSV contains NUL characters"))
        return parsed
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = [name.strip().lower() for name in reader.fieldnames or []]
        missing = [name for name in CSV_COLUMNS if name not in header]
        if missing:
            message = f"the CSV needs the columns {', '.join(CSV_COLUMNS)}; missing: {', '.join(missing)}"
            parsed.errors.append(FieldError(field="line 1", code="csv", message=message))
            return parsed
        reader.fieldnames = header
        for raw in reader:
            _parse_row(parsed, reader.line_num, raw)
    except csv.Error as exc:
        parsed.errors.append(FieldError(field=f"line {reader.line_num}", code="csv", message=str(exc)))
    return parsed


def _parse_row(parsed: ParsedSpend, line: int, raw: dict[str | Any, Any]) -> None:
    row = {name: (raw.get(name) or "").strip() for name in CSV_COLUMNS}
    if not any(row.values()):
        return
    try:
        parsed.spends.append(SpendCreate.model_validate(row))
    except ValidationError as exc:
        parsed.errors += [FieldError(field=f"line {line}: {'.'.join(str(p) for p in e['loc']) or 'row'}",
                                     code=e["type"], message=e["msg"]) for e in exc.errors()]


def _stored(spend: SpendCreate, now: datetime) -> StoredSpend:
    return StoredSpend(id=f"spd_{uuid.uuid4().hex[:16]}", created_at=now, **spend.model_dump())


def _public(spend: StoredSpend) -> SpendPublic:
    return SpendPublic.model_validate(spend, from_attributes=True)


def _unprocessable(message: str, errors: list[FieldError]) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail={
        "detail": message, "errors": [e.model_dump() for e in errors[:MAX_ROW_ERRORS]]})


@router.post("/campaigns/spend", response_model=SpendPublic, status_code=201, dependencies=WRITE,
             summary="Record a campaign's spend from a source over a period")
async def create_spend(body: SpendCreate, deps: DepsDep) -> SpendPublic:
    spend = _stored(body, deps.platform.clock.now())
    async with deps.platform.db.transaction() as session:
        await deps.store.insert_spend(session, [spend])
    return _public(spend)


@router.get("/campaigns/spend", response_model=list[SpendPublic], dependencies=READ,
            summary="Spend whose period shares a day with [from, to], oldest period first")
async def list_spend(
    deps: DepsDep,
    first: date | None = Query(default=None, alias="from", description="First day (inclusive)"),
    last: date | None = Query(default=None, alias="to", description="Last day (inclusive)"),
    utm_campaign: str | None = Query(default=None, max_length=255),
) -> list[SpendPublic]:
    async with deps.platform.db.transaction() as session:
        spends = await deps.store.spend_between(session, first, last, utm_campaign)
    return [_public(s) for s in spends]


@router.delete("/campaigns/spend/{spend_id}", status_code=204, dependencies=WRITE,
               summary="Remove a spend recorded in error (record the right one again)",
               responses={404: {"description": "No such spend", "content": {"application/json": {"example": {
                   "detail": "no spend 'spd_4f1c2b3a9d8e7f60'"}}}}})
async def delete_spend(spend_id: str, deps: DepsDep) -> Response:
    async with deps.platform.db.transaction() as session:
        deleted = await deps.store.delete_spend(session, spend_id)
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no spend '{spend_id}'")
    return Response(status_code=204)


@router.post(
    "/campaigns/spend/import", response_model=SpendImported, status_code=201, dependencies=WRITE,
    summary="Import spend from CSV: every row or, when any row is at fault, none",
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"},
                   "example": CSV_EXAMPLE}}}},
    responses={422: {"description": "Rows at fault, by line; nothing was imported", "content": {
        "application/json": {"example": {"detail": "1 row error(s); nothing was imported", "errors": [
            {"field": "line 3: currency", "code": "value_error",
             "message": "Value error, 'EUX' is not an ISO 4217 currency code (three capital letters, e.g. EUR)"}]}}}}},
)
@body_limit("spend_import_max_bytes")
async def import_spend(request: Request, deps: DepsDep) -> SpendImported:
    try:
        parsed = parse_spend_csv((await request.body()).decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise _unprocessable("the CSV is not UTF-8", [FieldError(field="body", code="csv",
                                                                  message="the CSV is not UTF-8")]) from None
    if parsed.errors:
        raise _unprocessable(f"{len(parsed.errors)} row error(s); nothing was imported", parsed.errors)
    if not parsed.spends:
        raise _unprocessable("the CSV has no rows", [FieldError(field="body", code="csv", message="no rows")])
    now = deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        await deps.store.insert_spend(session, [_stored(s, now) for s in parsed.spends])
    return SpendImported(imported=len(parsed.spends))


def _plain(rate: Decimal) -> Decimal:
    """The rate without the trailing zeros of its stored scale (1.1000000000 is 1.1; 100 stays 100)."""
    text = format(rate, "f")
    return Decimal(text.rstrip("0").rstrip(".") if "." in text else text)


def _table_public(table: RateTable) -> RateTablePublic:
    return RateTablePublic(effective_from=None if table.effective_from == ALWAYS_IN_FORCE else table.effective_from,
                           rates={code: _plain(rate) for code, rate in table.per_unit.items()})


async def _rates_on(deps: DepsDep, on: date) -> CurrencyRates:
    async with deps.platform.db.transaction() as session:
        tables = await deps.store.currency_rate_tables(session)
    in_force = Rates(deps.settings.reporting_currency, tables, on).in_force(on)
    public = _table_public(in_force) if in_force else RateTablePublic(effective_from=None, rates={})
    return CurrencyRates(reporting_currency=deps.settings.reporting_currency, on=on,
                         effective_from=public.effective_from, rates=public.rates,
                         tables=[_table_public(table) for table in tables])


def _today(deps: DepsDep) -> date:
    return deps.platform.clock.now().astimezone(UTC).date()


@router.get("/currency-rates", response_model=CurrencyRates, dependencies=READ,
            summary="The reporting currency, what each other currency is worth in it on a day, and every rate table")
async def get_currency_rates(
    deps: DepsDep,
    on: date | None = Query(default=None, description="The day (UTC); today when left out"),
) -> CurrencyRates:
    return await _rates_on(deps, on or _today(deps))


@router.put("/currency-rates", response_model=CurrencyRates, dependencies=WRITE,
            summary="Replace the rate table in force from a day on, or every table (a currency left out has no "
                    "rate there; its amounts are not counted)")
async def put_currency_rates(body: CurrencyRatesUpdate, deps: DepsDep) -> CurrencyRates:
    reporting = deps.settings.reporting_currency
    if reporting in body.rates:
        raise _unprocessable("the reporting currency needs no rate", [FieldError(
            field=f"rates.{reporting}", code="reporting_currency",
            message=f"{reporting} is the reporting currency (SLA_REPORTING_CURRENCY): its rate is always 1")])
    if body.effective_from is not None and not body.rates:
        raise _unprocessable("a dated rate table needs a rate", [FieldError(
            field="rates", code="empty_table",
            message="a table in force from a day needs at least one rate; DELETE "
                    "/v1/admin/currency-rates/{effective_from} removes the table of that day")])
    async with deps.platform.db.transaction() as session:
        await deps.store.replace_currency_rates(session, body.rates, deps.platform.clock.now(), body.effective_from)
    return await _rates_on(deps, body.effective_from or _today(deps))


@router.delete("/currency-rates/{effective_from}", status_code=204, dependencies=WRITE,
               summary="Remove the rate table in force from that day (the table before it is in force again)",
               responses={404: {"description": "No table is in force from that day"}})
async def delete_currency_rates(effective_from: date, deps: DepsDep) -> Response:
    # The every-day table is stored on ALWAYS_IN_FORCE, a day no PUT names: it is not a dated table.
    deleted = False
    if effective_from > ALWAYS_IN_FORCE:
        async with deps.platform.db.transaction() as session:
            deleted = await deps.store.delete_currency_rate_table(session, effective_from)
    if not deleted:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no rate table in force from {effective_from}")
    return Response(status_code=204)
