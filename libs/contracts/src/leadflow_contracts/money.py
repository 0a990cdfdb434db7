"""Money as it travels in events and APIs: a decimal amount (never a float) and an ISO 4217 currency code."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import pycountry
from pydantic import AfterValidator, Field

CURRENCY_CODES: frozenset[str] = frozenset(currency.alpha_3 for currency in pycountry.currencies)


def known_currency(code: str) -> str:
    if code not in CURRENCY_CODES:
        raise ValueError(f"'{code}' is not an ISO 4217 currency code (three capital letters, e.g. EUR)")
    return code


CurrencyCode = Annotated[str, Field(min_length=3, max_length=3, examples=["EUR"]), AfterValidator(known_currency)]
# Up to 14 digits before the point and 4 after it: the NUMERIC(18, 4) the services keep amounts in.
Amount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4, allow_inf_nan=False, examples=["12500.00"])]
