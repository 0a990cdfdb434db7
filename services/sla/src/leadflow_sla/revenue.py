"""Pipeline, revenue and what the spend bought: the money figures the funnel adds per group.

Every lead in the funnel came in through a marketing form, so all of its pipeline is marketing-sourced.
Money is ``Decimal`` from the CRM callback to the answer, which gives it as a string with two decimals
in the reporting currency; amounts are converted at the admin's rates (``PUT /v1/admin/currency-rates``)
and rounded once, when shown.

Rates come as whole tables, each in force from its day until the next table's: a won deal converts at the
table in force on the day it was won, an open deal at today's (what the pipeline is worth now), and a spend
each day of its share at that day's, so setting this month's rates does not restate last year's revenue.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from leadflow_sla.domain import FUNNEL_RANK, FunnelLead, ratio

CENT = Decimal("0.01")
ZERO = Decimal(0)
# The day of a rate table set without one: in force on every day before the first dated table.
ALWAYS_IN_FORCE = date.min


@dataclass(frozen=True)
class RateTable:
    """What one unit of each currency is worth in the reporting currency, from ``effective_from`` on."""

    effective_from: date
    per_unit: Mapping[str, Decimal]


def _effective_from(table: RateTable) -> date:
    return table.effective_from


@dataclass(frozen=True)
class Rates:
    """The rate tables by the day each comes into force (ascending), and ``today``, the day an amount
    without a day of its own (an open deal) is valued at."""

    reporting_currency: str
    tables: Sequence[RateTable]
    today: date

    @classmethod
    def constant(cls, reporting_currency: str, per_unit: Mapping[str, Decimal]) -> Rates:
        """One table, in force on every day."""
        return cls(reporting_currency, [RateTable(ALWAYS_IN_FORCE, per_unit)], ALWAYS_IN_FORCE)

    def _index(self, day: date) -> int:
        """The index of the table in force on ``day``; -1 before the first table."""
        # Searched by key: no list of the tables' days is built for every amount converted.
        return bisect_right(self.tables, day, key=_effective_from) - 1

    def in_force(self, day: date) -> RateTable | None:
        index = self._index(day)
        return self.tables[index] if index >= 0 else None

    def convert(self, amount: Decimal, currency: str, day: date | None = None) -> Decimal | None:
        """``amount`` at the table in force on ``day`` (today when None). None when that table has no rate
        for the currency, or no table is in force: the amount is left out and counted as unconverted."""
        if currency == self.reporting_currency:
            return amount
        table = self.in_force(self.today if day is None else day)
        rate = None if table is None else table.per_unit.get(currency)
        return None if rate is None else amount * rate

    def convert_days(self, amount: Decimal, days: int, currency: str, first: date, last: date) -> Decimal | None:
        """``amount`` spread evenly over ``days`` days, taken on the days ``first`` to ``last`` (both
        included, among them), each day at the table in force on it; None when a day has no rate."""
        if currency == self.reporting_currency:
            return amount * ((last - first).days + 1) / days
        total = ZERO
        day = first
        while day <= last:
            index = self._index(day)
            # The days up to the next table's first, or to the last.
            until = last
            if index + 1 < len(self.tables):
                until = min(last, self.tables[index + 1].effective_from - timedelta(days=1))
            rate = self.tables[index].per_unit.get(currency) if index >= 0 else None
            if rate is None:
                return None
            total += amount * ((until - day).days + 1) / days * rate
            day = until + timedelta(days=1)
        return total


@dataclass(frozen=True)
class Spend:
    """Money spent on a campaign from a source over the days ``period_from`` to ``period_to``, both included."""

    utm_campaign: str
    source: str
    period_from: date
    period_to: date
    amount: Decimal
    currency: str


def _days_in_window(spend: Spend, start: datetime, end: datetime) -> tuple[date, date] | None:
    """The first and last of the spend's days that begin in [start, end) (UTC); None when there are none."""
    first = max(spend.period_from, _first_day_from(start))
    last = min(spend.period_to, _first_day_from(end) - timedelta(days=1))
    return (first, last) if first <= last else None


def _spend_days(spend: Spend) -> int:
    return (spend.period_to - spend.period_from).days + 1


def spend_in_window(spend: Spend, start: datetime, end: datetime) -> Decimal:
    """The share of the spend on the (UTC) days that begin in [start, end): spread evenly over its days."""
    window = _days_in_window(spend, start, end)
    if window is None:
        return ZERO
    first, last = window
    return spend.amount * ((last - first).days + 1) / _spend_days(spend)


def spend_in_window_converted(spend: Spend, start: datetime, end: datetime, rates: Rates) -> Decimal | None:
    """``spend_in_window`` in the reporting currency, each day at the table in force on it; None when a day
    of the share has no rate (a share of nothing converts to nothing)."""
    window = _days_in_window(spend, start, end)
    if window is None:
        return ZERO
    return rates.convert_days(spend.amount, _spend_days(spend), spend.currency, *window)


def _first_day_from(moment: datetime) -> date:
    """The first day whose midnight (UTC) is at or after ``moment``."""
    utc = moment.astimezone(UTC)
    day = utc.date()
    return day if utc == datetime.combine(day, time(), UTC) else day + timedelta(days=1)


def money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def per(amount: Decimal | None, count: int) -> str | None:
    """Money per item (cost per lead, average deal size); None when there is nothing to divide by."""
    return None if amount is None or count == 0 else money(amount / count)


@dataclass
class MoneyGroup:
    """The deals and spend of one funnel group."""

    pipeline: Decimal = ZERO
    revenue: Decimal = ZERO
    open_deals: int = 0
    won: int = 0
    won_with_amount: int = 0
    lost: int = 0
    unconverted: int = 0
    spend: Decimal | None = None

    def add(self, lead: FunnelLead, rates: Rates) -> None:
        won = lead.stage_rank >= FUNNEL_RANK["converted"]
        lost = not won and lead.lost
        open_deal = not won and not lost and lead.stage_rank == FUNNEL_RANK["opportunity"]
        self.won += won
        self.lost += lost
        self.open_deals += open_deal
        if lead.deal_amount is None or lead.deal_currency is None or not (won or open_deal):
            return
        # A won deal at the rates of the day it was won; an open one at today's.
        day = lead.converted_at.astimezone(UTC).date() if won and lead.converted_at is not None else None
        value = rates.convert(lead.deal_amount, lead.deal_currency, day)
        if value is None:
            self.unconverted += 1
        elif won:
            self.revenue += value
            self.won_with_amount += 1
        else:
            self.pipeline += value

    def add_spend(self, amount: Decimal) -> None:
        self.spend = amount if self.spend is None else self.spend + amount

    def report(self, counts: Mapping[str, int]) -> dict[str, Any]:
        """``counts``: the group's funnel stage counts, which the costs divide the spend by."""
        spend = self.spend
        return {
            "pipeline": money(self.pipeline),
            "revenue": money(self.revenue),
            "deals": {"open": self.open_deals, "won": self.won, "lost": self.lost,
                      "without_rate": self.unconverted},
            "win_rate": ratio(self.won, self.won + self.lost),
            "average_deal_size": per(self.revenue, self.won_with_amount),
            "spend": money(spend),
            "cost_per_lead": per(spend, counts["captured"]),
            "cost_per_mql": per(spend, counts["mql"]),
            "cost_per_opportunity": per(spend, counts["opportunity"]),
            "return_on_spend": None if not spend else money(self.revenue / spend),
        }


def money_groups(
    leads: Iterable[FunnelLead], spends: Sequence[tuple[str | None, Decimal]], rates: Rates
) -> tuple[dict[str, MoneyGroup], MoneyGroup]:
    """Per group and in total. ``spends``: each spend's group (None when the grouping has no spend) and
    its amount in the reporting currency already, so a group's figures only add."""
    groups: dict[str, MoneyGroup] = {}
    total = MoneyGroup()
    for lead in leads:
        groups.setdefault(lead.group, MoneyGroup()).add(lead, rates)
        total.add(lead, rates)
    for group, amount in spends:
        if group is not None:
            groups.setdefault(group, MoneyGroup()).add_spend(amount)
        total.add_spend(amount)
    return groups, total
