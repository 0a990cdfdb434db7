"""Pipeline, revenue and what the spend bought: the money figures the funnel adds per group.

Every lead in the funnel came in through a marketing form, so all of its pipeline is marketing-sourced.
Money is ``Decimal`` from the CRM callback to the answer, which gives it as a string with two decimals
in the reporting currency; amounts are converted at the admin's rates (``PUT /v1/admin/currency-rates``)
and rounded once, when shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from leadflow_sla.domain import FUNNEL_RANK, FunnelLead, ratio

CENT = Decimal("0.01")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Rates:
    """What one unit of each currency is worth in the reporting currency."""

    reporting_currency: str
    per_unit: Mapping[str, Decimal] = field(default_factory=dict)

    def convert(self, amount: Decimal, currency: str) -> Decimal | None:
        """None when no rate is set for the currency: the amount is left out and counted as unconverted."""
        if currency == self.reporting_currency:
            return amount
        rate = self.per_unit.get(currency)
        return None if rate is None else amount * rate


@dataclass(frozen=True)
class Spend:
    """Money spent on a campaign from a source over the days ``period_from`` to ``period_to``, both included."""

    utm_campaign: str
    source: str
    period_from: date
    period_to: date
    amount: Decimal
    currency: str


def spend_in_window(spend: Spend, start: datetime, end: datetime) -> Decimal:
    """The share of the spend on the (UTC) days that begin in [start, end): spread evenly over its days."""
    days = (spend.period_to - spend.period_from).days + 1
    first = max(spend.period_from, _first_day_from(start))
    last = min(spend.period_to, _first_day_from(end) - timedelta(days=1))
    overlap = (last - first).days + 1
    if overlap <= 0:
        return ZERO
    return spend.amount * overlap / days


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
        value = rates.convert(lead.deal_amount, lead.deal_currency)
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
