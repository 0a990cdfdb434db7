"""The spend and currency rates page in-process over a stand-in sla: what each form sends, sla's refusals next to
their fields (a CSV's rows at fault by line), rates typed as CODE=RATE, and who may use it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from console_pages import StandIn

from leadflow_console.auth import User

ADMIN = User("u1", "admin", "Admin", "admin")
MARKETING = User("u2", "mo", "Mo", "marketing_ops")
MANAGER = User("u3", "mia", "Mia", "sales_manager", team_ids=("emea",))
SPEND_FORM = {"utm_campaign": "q4-webinar", "source": "linkedin", "period_from": "2026-11-01",
              "period_to": "2026-11-30", "amount": "3000", "currency": "EUR"}
NO_CURRENCY = {"detail": "1 validation error", "errors": [
    {"field": "currency", "code": "value_error", "message": "'EUX' is not an ISO 4217 currency code"}]}


class Sla(StandIn):
    """sla's spend and rates, in memory; a currency not three capitals is refused as sla refuses it."""

    def __init__(self) -> None:
        super().__init__()
        self.spends: dict[str, dict[str, Any]] = {}
        self.tables: dict[str | None, dict[str, str]] = {None: {"EUR": "1.1"}}

    def rates(self, on: str) -> dict[str, Any]:
        days = sorted(day for day in self.tables if day is not None and day <= on)
        current = days[-1] if days else None
        return {"reporting_currency": "USD", "on": on, "effective_from": current,
                "rates": self.tables.get(current, {}),
                "tables": [{"effective_from": day, "rates": self.tables[day]}
                           for day in sorted(self.tables, key=lambda d: d or "")]}

    def answer(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/v1/admin/campaigns/spend/import":
            if b"EUX" in request.content:
                return httpx.Response(422, json={"detail": "1 row error(s); nothing was imported", "errors": [
                    {"field": "line 3: currency", "code": "value_error", "message": "'EUX' is not a currency"}]})
            return httpx.Response(201, json={"imported": request.content.count(b"\n") - 1})
        if path == "/v1/admin/campaigns/spend":
            if method == "POST":
                body = json.loads(request.content)
                if body["currency"] == "EUX":
                    return httpx.Response(422, json=NO_CURRENCY)
                spend = {"id": f"spd_{len(self.spends)}", **body}
                self.spends[spend["id"]] = spend
                return httpx.Response(201, json=spend)
            return httpx.Response(200, json=list(self.spends.values()))
        if path.startswith("/v1/admin/campaigns/spend/") and method == "DELETE":
            return httpx.Response(204 if self.spends.pop(path.rsplit("/", 1)[1], None) else 404)
        if path == "/v1/admin/currency-rates":
            if method == "PUT":
                body = json.loads(request.content)
                if "USD" in body["rates"]:
                    return httpx.Response(422, json={"detail": "the reporting currency needs no rate", "errors": [
                        {"field": "rates.USD", "code": "reporting_currency",
                         "message": "USD is the reporting currency"}]})
                day = body.get("effective_from")
                if day is None:
                    self.tables.clear()
                self.tables[day] = body["rates"]
                return httpx.Response(200, json=self.rates(day or "2026-12-03"))
            return httpx.Response(200, json=self.rates("2026-12-03"))
        if path.startswith("/v1/admin/currency-rates/") and method == "DELETE":
            return httpx.Response(204 if self.tables.pop(path.rsplit("/", 1)[1], None) else 404)
        return httpx.Response(404, json={"detail": "not found"})


@pytest.fixture
def sla() -> Sla:
    return Sla()


@pytest.fixture
def as_user(sla: Sla, page_client: Any) -> Any:
    return lambda user: page_client(user, sla.handle)


async def test_marketing_ops_record_a_spend_and_remove_it(as_user: Any, sla: Sla):
    async with as_user(MARKETING) as client:
        recorded = await client.post("/spend", data=SPEND_FORM)
        assert recorded.status_code == 303
        page = (await client.get("/spend")).text
        assert "q4-webinar" in page and "3000.00 EUR" in page and "/spend/spd_0/delete" in page
        # The filter form as a browser sends it, its boxes empty; a day that is none is refused.
        assert (await client.get("/spend", params={"campaign": "", "from": "", "to": ""})).status_code == 200
        assert (await client.get("/spend", params={"from": "2026-13-45"})).status_code == 422
        assert "EUR = 1.1" in page
        assert (await client.post("/spend/spd_0/delete")).status_code == 303
    assert json.loads(sla.requests[0].content) == SPEND_FORM
    assert sla.changes() == ["POST /v1/admin/campaigns/spend", "DELETE /v1/admin/campaigns/spend/spd_0"]


async def test_slas_refusal_is_shown_at_its_field_and_the_form_keeps_what_was_typed(as_user: Any):
    async with as_user(MARKETING) as client:
        refused = await client.post("/spend", data={**SPEND_FORM, "currency": "EUX"})
    assert refused.status_code == 422
    assert 'id="currency-error">&#39;EUX&#39; is not an ISO 4217 currency code' in refused.text
    assert 'value="q4-webinar"' in refused.text


async def test_a_csv_is_imported_whole_or_its_rows_at_fault_are_listed(as_user: Any, sla: Sla):
    header = "utm_campaign,source,period_from,period_to,amount,currency\n"
    good = header + "brand,google,2026-10-01,2026-10-31,3100,USD\nbrand,bing,2026-10-01,2026-10-31,10,EUR\n"
    async with as_user(MARKETING) as client:
        imported = await client.post("/spend/import", files={"csv_file": ("q4.csv", good.encode(), "text/csv")})
        refused = await client.post("/spend/import", files={"csv_file": (
            "bad.csv", (header + "brand,google,2026-10-01,2026-10-31,1,USD\nbrand,x,2026-10-01,2026-10-31,1,EUX\n")
            .encode(), "text/csv")})
        empty = await client.post("/spend/import", files={"csv_file": ("empty.csv", b"", "text/csv")})
    assert imported.status_code == 200 and "q4.csv: 2 spends imported." in imported.text
    assert refused.status_code == 422 and "SLA refused the file: 1 row error(s); nothing was imported" in refused.text
    assert "<td>line 3: currency</td><td>&#39;EUX&#39; is not a currency</td>" in refused.text
    assert empty.status_code == 422 and "Choose a CSV file" in empty.text
    assert sla.changes() == ["POST /v1/admin/campaigns/spend/import"] * 2


async def test_rates_are_typed_as_code_eq_rate_for_every_day_or_from_a_day(as_user: Any, sla: Sla):
    async with as_user(MARKETING) as client:
        dated = await client.post("/spend/rates", data={"rates": "eur=1.2,\nGBP = 1.3", "effective_from": "2027-01-01"})
        assert dated.status_code == 303
        page = (await client.get("/spend")).text
        assert "EUR = 1.2, GBP = 1.3" in page and "/spend/rates/2027-01-01/delete" in page
        unreadable = await client.post("/spend/rates", data={"rates": "EUR 1.2", "effective_from": ""})
        reporting = await client.post("/spend/rates", data={"rates": "USD=1", "effective_from": ""})
        assert (await client.post("/spend/rates/2027-01-01/delete")).status_code == 303
        always = await client.post("/spend/rates", data={"rates": "EUR=1.05", "effective_from": ""})
    assert json.loads(sla.requests[0].content) == {"rates": {"EUR": "1.2", "GBP": "1.3"},
                                                   "effective_from": "2027-01-01"}
    assert unreadable.status_code == 422 and "write each rate as CODE=RATE" in unreadable.text
    assert reporting.status_code == 422 and 'id="rates-error">USD is the reporting currency' in reporting.text
    assert always.status_code == 303 and sla.tables == {None: {"EUR": "1.05"}}
    assert sla.changes() == ["PUT /v1/admin/currency-rates", "PUT /v1/admin/currency-rates",
                             "DELETE /v1/admin/currency-rates/2027-01-01", "PUT /v1/admin/currency-rates"]


async def test_the_page_is_marketing_ops_and_admins_only(as_user: Any, sla: Sla):
    async with as_user(ADMIN) as client:
        assert (await client.get("/spend")).status_code == 200
    async with as_user(MANAGER) as client:
        assert (await client.get("/spend")).status_code == 403
        assert (await client.post("/spend", data=SPEND_FORM)).status_code == 403
        assert "Spend &amp; rates" not in (await client.get("/")).text
    assert sla.changes() == []
