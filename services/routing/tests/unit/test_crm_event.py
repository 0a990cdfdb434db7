"""The CRM callback's body: an opportunity's amount and currency, checked field by field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from leadflow_routing.schemas import CrmEvent


def _fields_at_fault(body: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        CrmEvent.model_validate(body)
    return [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()]


@pytest.mark.parametrize("touch_type", ["opportunity_created", "converted", "closed_lost"])
def test_deal_touches_take_an_amount_and_its_currency(touch_type: str) -> None:
    event = CrmEvent.model_validate({"type": touch_type, "amount": "12500.10", "currency": "JPY"})
    assert (event.amount, event.currency) == (Decimal("12500.10"), "JPY")
    assert CrmEvent.model_validate({"type": touch_type}).amount is None


def test_an_amount_is_a_non_negative_decimal_in_a_known_currency() -> None:
    assert _fields_at_fault({"type": "converted", "amount": "-0.01", "currency": "EUR"}) == ["amount"]
    assert _fields_at_fault({"type": "converted", "amount": "NaN", "currency": "EUR"}) == ["amount"]
    assert _fields_at_fault({"type": "converted", "amount": "1.00001", "currency": "EUR"}) == ["amount"]
    assert _fields_at_fault({"type": "converted", "amount": "1", "currency": "eur"}) == ["currency"]
    assert _fields_at_fault({"type": "converted", "amount": "1", "currency": "ABC"}) == ["currency"]


def test_amount_and_currency_come_together_and_only_on_a_deal() -> None:
    assert _fields_at_fault({"type": "converted", "amount": "1"}) == ["currency"]
    assert _fields_at_fault({"type": "converted", "currency": "EUR"}) == ["currency"]
    assert _fields_at_fault({"type": "contacted", "amount": "1", "currency": "EUR"}) == ["amount"]
