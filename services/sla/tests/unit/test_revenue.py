"""Money without I/O: spend spread over its days, currency conversion, deals per group, the spend CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from leadflow_contracts import LeadTouched, new_event
from leadflow_sla import domain, reports, revenue
from leadflow_sla.domain import FUNNEL_RANK, FunnelLead
from leadflow_sla.spend import parse_spend_csv

USD = revenue.Rates.constant("USD", {"EUR": Decimal("1.08")})


def _spend(first: date, last: date, amount: str, currency: str = "USD", campaign: str = "brand",
           source: str = "google") -> revenue.Spend:
    return revenue.Spend(campaign, source, first, last, Decimal(amount), currency)


def test_spend_spreads_evenly_over_its_days_and_counts_the_days_the_window_holds() -> None:
    october = _spend(date(2026, 10, 1), date(2026, 10, 31), "3100")
    whole = revenue.spend_in_window(october, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert whole == Decimal("3100")
    # 1-10 October: 10 of 31 days.
    part = revenue.spend_in_window(october, datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 11, tzinfo=UTC))
    assert part == Decimal("1000")
    # A window starting mid-day counts the days whose midnight it holds: 2..31 October.
    late = revenue.spend_in_window(october, datetime(2026, 10, 1, 9, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert late == Decimal("3000")
    assert revenue.spend_in_window(october, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)) == 0


def test_amounts_convert_at_the_rate_and_without_a_rate_are_left_out() -> None:
    assert USD.convert(Decimal("100"), "EUR") == Decimal("108.00")
    assert USD.convert(Decimal("100"), "USD") == Decimal("100")
    assert USD.convert(Decimal("100"), "GBP") is None


def _lead(group: str, stage: str, amount: str | None = None, currency: str | None = None,
          lost: bool = False, converted_at: datetime | None = None) -> FunnelLead:
    return FunnelLead(group, FUNNEL_RANK[stage], None, None, Decimal(amount) if amount else None, currency, lost,
                      converted_at)


# EUR at 1.10 on every day before 2026-11-01, 1.20 from then, 1.30 from 2027-01-01; GBP only from November.
DATED = revenue.Rates("USD", [
    revenue.RateTable(revenue.ALWAYS_IN_FORCE, {"EUR": Decimal("1.10")}),
    revenue.RateTable(date(2026, 11, 1), {"EUR": Decimal("1.20"), "GBP": Decimal("1.25")}),
    revenue.RateTable(date(2027, 1, 1), {"EUR": Decimal("1.30"), "GBP": Decimal("1.27")})], today=date(2027, 1, 5))


def test_an_amount_converts_at_the_table_in_force_on_its_day() -> None:
    assert DATED.convert(Decimal("100"), "EUR", date(2026, 10, 31)) == Decimal("110.00")
    assert DATED.convert(Decimal("100"), "EUR", date(2026, 11, 1)) == Decimal("120.00")
    assert DATED.convert(Decimal("100"), "EUR") == Decimal("130.00")  # today's
    assert DATED.convert(Decimal("100"), "GBP", date(2026, 10, 31)) is None  # the table of that day has none
    assert DATED.convert(Decimal("100"), "USD", date(2026, 10, 31)) == Decimal("100")
    only_dated = revenue.Rates("USD", DATED.tables[1:], today=date(2027, 1, 5))
    assert only_dated.convert(Decimal("100"), "EUR", date(2026, 10, 31)) is None  # no table in force yet


def test_a_won_deal_converts_on_the_day_it_was_won_and_an_open_one_at_todays_rates() -> None:
    won_in_october = _lead("g", "converted", "1000", "EUR", converted_at=datetime(2026, 10, 31, 23, tzinfo=UTC))
    won_in_november = _lead("g", "converted", "1000", "EUR", converted_at=datetime(2026, 11, 1, 0, 30, tzinfo=UTC))
    open_deal = _lead("g", "opportunity", "1000", "EUR")
    _, total = revenue.money_groups([won_in_october, won_in_november, open_deal], [], DATED)
    figures = total.report({"captured": 3, "mql": 3, "opportunity": 3})
    assert (figures["revenue"], figures["pipeline"]) == ("2300.00", "1300.00")


def test_a_spend_converts_each_day_at_the_table_in_force_that_day() -> None:
    # 100 EUR a day over Oct 30 - Nov 2: two days at 1.10, two at 1.20.
    spend = _spend(date(2026, 10, 30), date(2026, 11, 2), "400", "EUR")
    whole = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert revenue.spend_in_window_converted(spend, *whole, DATED) == Decimal("460")
    november = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert revenue.spend_in_window_converted(spend, *november, DATED) == Decimal("240")
    # A day of the share without a rate leaves the whole spend out (counted as without a rate).
    gbp = _spend(date(2026, 10, 31), date(2026, 11, 1), "200", "GBP")
    assert revenue.spend_in_window_converted(gbp, *whole, DATED) is None
    assert revenue.spend_in_window_converted(gbp, *november, DATED) == Decimal("125")
    assert revenue.spend_in_window_converted(gbp, datetime(2026, 12, 1, tzinfo=UTC),
                                             datetime(2027, 1, 1, tzinfo=UTC), DATED) == 0


def test_won_open_and_lost_deals_make_revenue_pipeline_and_win_rate() -> None:
    leads = [_lead("g", "converted", "1000", "EUR"), _lead("g", "opportunity", "500", "USD"),
             _lead("g", "opportunity", "700", "USD", lost=True), _lead("g", "opportunity", "9", "GBP"),
             _lead("g", "mql"), _lead("g", "converted")]
    groups, total = revenue.money_groups(leads, [("g", Decimal("2160"))], USD)
    counts = {"captured": 6, "mql": 6, "opportunity": 5}
    figures = total.report(counts)
    assert figures == {
        "pipeline": "500.00", "revenue": "1080.00",
        "deals": {"open": 2, "won": 2, "lost": 1, "without_rate": 1},
        "win_rate": 0.6667,
        # The won lead without an amount is a win, but not a deal size.
        "average_deal_size": "1080.00", "spend": "2160.00",
        "cost_per_lead": "360.00", "cost_per_mql": "360.00", "cost_per_opportunity": "432.00",
        "return_on_spend": "0.50",
    }
    assert groups["g"].report(counts) == figures


def test_money_rounds_half_up_once_at_the_end() -> None:
    thirds = revenue.MoneyGroup(spend=Decimal("100"))
    assert thirds.report({"captured": 3, "mql": 0, "opportunity": 0})["cost_per_lead"] == "33.33"
    assert revenue.money(Decimal("0.125")) == "0.13"


def test_a_lost_deal_won_after_all_is_won_and_its_latest_amount_counts() -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    facts = domain.LeadFacts(lead_id="L1", captured_at=start, stage_rank=FUNNEL_RANK["opportunity"])
    lost = LeadTouched(lead_id="L1", touch_id="t1", touch_type="closed_lost", occurred_at=start,
                       amount=Decimal("800"), currency="EUR")
    changes = domain.lead_changes(facts, new_event(lost, source="routing", subject="L1", time=start))
    assert (changes["lost_at"], changes["deal_amount"], changes["deal_currency"]) == (start, Decimal("800"), "EUR")
    won = LeadTouched(lead_id="L1", touch_id="t2", touch_type="converted", occurred_at=start,
                      amount=Decimal("950"), currency="EUR")
    after = domain.lead_changes(domain.LeadFacts(lead_id="L1", lost_at=start, stage_rank=FUNNEL_RANK["opportunity"]),
                                new_event(won, source="routing", subject="L1", time=start))
    assert after["lost_at"] is None and after["deal_amount"] == Decimal("950")
    assert after["stage_rank"] == FUNNEL_RANK["converted"]


def test_grouped_by_campaign_a_campaign_with_spend_and_no_lead_is_a_group_and_others_get_no_spend() -> None:
    window = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    spends = [_spend(date(2026, 10, 1), date(2026, 10, 31), "310", campaign="retarget"),
              _spend(date(2026, 10, 1), date(2026, 10, 31), "100", "EUR", campaign="brand"),
              _spend(date(2026, 10, 1), date(2026, 10, 31), "1", "GBP", campaign="brand")]
    leads = [_lead("brand", "mql")]
    by_campaign = reports.funnel_report(leads, *window, "utm_campaign", USD, spends)
    assert [(g["group"], g["spend"], g["cost_per_lead"]) for g in by_campaign["groups"]] == [
        ("brand", "108.00", "108.00"), ("retarget", "310.00", None)]
    assert by_campaign["spend_without_rate"] == 1 and by_campaign["total"]["spend"] == "418.00"
    by_team = reports.funnel_report([_lead("emea", "mql")], *window, "team", USD, spends)
    assert [(g["group"], g["spend"]) for g in by_team["groups"]] == [("emea", None)]
    assert by_team["total"]["spend"] == "418.00"


def test_the_spend_csv_reads_every_row_or_names_each_row_at_fault_by_line() -> None:
    good = parse_spend_csv("Utm_Campaign,source,period_from,period_to,amount,currency\n"
                           "brand,google,2026-10-01,2026-10-31,3100.50,EUR\n\n")
    assert good.errors == [] and [(s.utm_campaign, s.amount, s.currency) for s in good.spends] == [
        ("brand", Decimal("3100.50"), "EUR")]
    bad = parse_spend_csv("utm_campaign,source,period_from,period_to,amount,currency\n"
                          "brand,google,2026-10-01,2026-10-31,1,usd\n"
                          ",google,2026-10-01,2026-10-31,1,USD\n")
    assert [e.field for e in bad.errors] == ["line 2: currency", "line 3: utm_campaign"]
    assert [e.field for e in parse_spend_csv("amount\n1\n").errors] == ["line 1"]
    assert [e.field for e in parse_spend_csv("a\x00b").errors] == ["body"]
