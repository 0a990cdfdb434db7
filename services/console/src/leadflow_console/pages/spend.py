"""Marketing spend and currency rates, the inputs of the funnel report's money (sla): record a spend or import a
CSV of them (all rows or none, each refused row named with its line), remove one recorded in error; set a
currency rate table in force on every day or from a day on, and remove a dated one. Marketing ops and admins."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from leadflow_console.auth import User, require_roles
from leadflow_console.clients import ServiceError, ServiceUnavailable
from leadflow_console.deps import ConsoleDep, request_console
from leadflow_console.edits import FieldErrors, InputProblem, attempt, is_refusal, optional_text, text_list
from leadflow_console.pages import NavItem, Page
from leadflow_console.templating import redirect, render

HOME = "/spend"
router = APIRouter(prefix=HOME, tags=["spend and currency rates"])
MarketingOps = Annotated[User, Depends(require_roles("marketing_ops"))]
SpendId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

SPEND = "/v1/admin/campaigns/spend"
RATES = "/v1/admin/currency-rates"
SPEND_FIELDS = ("utm_campaign", "source", "period_from", "period_to", "amount", "currency")
RATE_FIELDS = ("rates", "effective_from")
CSV_COLUMNS = "utm_campaign, source, period_from, period_to, amount, currency"
CENT = Decimal("0.01")
# sla's own import limit is its setting; the console refuses more than this before sending it.
MAX_CSV_BYTES = 5 * 1024 * 1024


class SpendBoxes(BaseModel):
    utm_campaign: str = Field(default="", max_length=255)
    source: str = Field(default="", max_length=255)
    period_from: str = Field(default="", max_length=10)
    period_to: str = Field(default="", max_length=10)
    amount: str = Field(default="", max_length=40)
    currency: str = Field(default="", max_length=3)

    def body(self) -> dict[str, Any]:
        return {name: getattr(self, name).strip() for name in SPEND_FIELDS}


class RateBoxes(BaseModel):
    rates: str = Field(default="", max_length=10_000)
    effective_from: str = Field(default="", max_length=10)

    def body(self) -> dict[str, Any]:
        """``EUR=1.08, GBP=1.27`` (commas or lines) as sla's table; sla checks the codes and the rates."""
        rates: dict[str, str] = {}
        for item in text_list(self.rates):
            code, sep, rate = item.partition("=")
            if not sep or not code.strip() or not rate.strip():
                raise InputProblem("rates", f"“{item}”: write each rate as CODE=RATE, e.g. EUR=1.08")
            rates[code.strip().upper()] = rate.strip()
        body: dict[str, Any] = {"rates": rates}
        if day := optional_text(self.effective_from):
            body["effective_from"] = day
        return body


def _amount(stored: str) -> str:
    """An amount as people write money: 3100.0000 is 3100.00; a fourth decimal that is there stays."""
    value = Decimal(stored).normalize()
    return format(value.quantize(CENT) if value.as_tuple().exponent > -2 else value, "f")  # type: ignore[operator]


def _day(name: str, value: str) -> date | None:
    """A filter's day; an empty box (as a browser sends it) is none."""
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise HTTPException(422, f"{name}: {value!r} is not a day (YYYY-MM-DD)") from None


@router.get("", response_class=HTMLResponse, summary="Campaign spend and currency rates")
async def spend_and_rates(request: Request, user: MarketingOps,
                          campaign: Annotated[str, Query(max_length=255)] = "",
                          first: Annotated[str, Query(alias="from", max_length=10)] = "",
                          last: Annotated[str, Query(alias="to", max_length=10)] = "") -> Response:
    return await _page(request, SpendBoxes(), FieldErrors(), RateBoxes(), FieldErrors(),
                       campaign=campaign, first=_day("from", first), last=_day("to", last))


@router.post("", response_class=HTMLResponse, summary="Record one spend",
             responses={303: {"description": "Recorded"}, 422: {"description": "Refused; see the page"}})
async def record_spend(request: Request, user: MarketingOps, console: ConsoleDep,
                       boxes: Annotated[SpendBoxes, Form()]) -> Response:
    recorded = await attempt(lambda: console.clients.sla.post(SPEND, json=boxes.body()), SPEND_FIELDS)
    if isinstance(recorded, FieldErrors):
        return await _page(request, boxes, recorded, RateBoxes(), FieldErrors())
    return redirect(request, HOME, f"Spend of {_amount(recorded['amount'])} {recorded['currency']} on "
                                   f"{recorded['utm_campaign']} ({recorded['source']}) recorded.")


@router.post("/import", response_class=HTMLResponse, summary="Import spends from a CSV file: every row or none",
             responses={200: {"description": "Imported"}, 422: {"description": "Nothing imported; the page says why"}})
async def import_spend(request: Request, user: MarketingOps, console: ConsoleDep,
                       csv_file: Annotated[UploadFile, File()]) -> Response:
    content = await csv_file.read(MAX_CSV_BYTES + 1)
    problem, errors, imported = None, [], None
    if not content:
        problem = "Choose a CSV file with a header row and at least one spend."
    elif len(content) > MAX_CSV_BYTES:
        problem = f"The file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB; split it."
    else:
        try:
            response = await console.clients.sla.request("POST", f"{SPEND}/import", content=content,
                                                         headers={"content-type": "text/csv"})
            imported = response.json()["imported"]
        except ServiceError as exc:
            if not is_refusal(exc):
                raise
            problem = f"SLA refused the file: {exc.detail}"
            errors = exc.errors
    return await render(request, "spend/import.html", {
        "imported": imported, "problem": problem, "errors": errors, "filename": csv_file.filename or "the file",
        "columns": CSV_COLUMNS}, status_code=422 if problem else 200)


@router.post("/{spend_id}/delete", response_class=HTMLResponse, summary="Remove a spend recorded in error",
             responses={303: {"description": "Removed"}})
async def delete_spend(request: Request, spend_id: SpendId, user: MarketingOps, console: ConsoleDep) -> Response:
    await console.clients.sla.delete(f"{SPEND}/{spend_id}")
    return redirect(request, HOME, "Spend removed.")


@router.post("/rates", response_class=HTMLResponse,
             summary="Set a currency rate table, in force on every day or from a day on",
             responses={303: {"description": "Saved"}, 422: {"description": "Refused; see the page"}})
async def set_rates(request: Request, user: MarketingOps, console: ConsoleDep,
                    boxes: Annotated[RateBoxes, Form()]) -> Response:
    saved = await attempt(lambda: console.clients.sla.put(RATES, json=boxes.body()), RATE_FIELDS)
    if isinstance(saved, FieldErrors):
        return await _page(request, SpendBoxes(), FieldErrors(), boxes, saved)
    since = f"from {saved['effective_from']} on" if saved.get("effective_from") else "on every day"
    return redirect(request, HOME, f"Currency rates saved, in force {since}.")


@router.post("/rates/{effective_from}/delete", response_class=HTMLResponse,
             summary="Remove the rate table in force from a day", responses={303: {"description": "Removed"}})
async def delete_rates(request: Request, effective_from: date, user: MarketingOps, console: ConsoleDep) -> Response:
    await console.clients.sla.delete(f"{RATES}/{effective_from.isoformat()}")
    return redirect(request, HOME, f"The rate table in force from {effective_from} was removed.")


async def _page(request: Request, spend: SpendBoxes, spend_errors: FieldErrors, rates: RateBoxes,
                rate_errors: FieldErrors, *, campaign: str = "", first: date | None = None,
                last: date | None = None) -> HTMLResponse:
    sla = request_console(request).clients.sla
    try:
        spends = await sla.get(SPEND, {"utm_campaign": campaign.strip() or None,
                                       "from": first.isoformat() if first else None,
                                       "to": last.isoformat() if last else None})
        rate_tables = await sla.get(RATES)
    except ServiceUnavailable:
        spends = rate_tables = None
    spends = [{**spend, "amount": _amount(spend["amount"])} for spend in spends] if spends else spends
    return await render(request, "spend/index.html", {
        "spends": spends, "rate_tables": rate_tables, "campaign": campaign, "first": first, "last": last,
        "spend": spend, "spend_errors": spend_errors, "rates": rates, "rate_errors": rate_errors,
        "columns": CSV_COLUMNS,
    }, status_code=422 if spend_errors or rate_errors else 200)


page = Page(router, (NavItem("Spend & rates", HOME, ("marketing_ops",)),))
