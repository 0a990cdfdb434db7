"""The funnel as Prometheus gauges for the marketing and sales dashboard: the leads captured in the last
window (30 days by default) at each stage, by source and by campaign, and their speed to lead and SLA
outcomes by team (the funnel report's figures). Read from the lead table, so every replica reports the same
whole figures; UTM values are anyone's to make up, so only the sources and campaigns with the most leads
keep their name, the rest count as "(other)" (teams are admin data)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from leadflow_kit.db import as_background_scan
from leadflow_sla import reports, revenue
from leadflow_sla.bootstrap import Deps
from leadflow_sla.domain import FUNNEL_STAGES
from leadflow_sla.funnel_gauges_store import funnel_counts, team_speeds

OTHER = "(other)"


class FunnelGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.by_source = Gauge("leadflow_funnel_leads", "Leads captured in the funnel window that reached "
                               "a stage, by source", ["source", "stage"], registry=registry)
        self.by_campaign = Gauge("leadflow_funnel_campaign_leads", "Leads captured in the funnel window that "
                                 "reached a stage, by campaign (utm_campaign)", ["campaign", "stage"],
                                 registry=registry)
        self.team_speed = Gauge("leadflow_team_speed_to_lead_seconds", "Speed to lead of the leads captured in "
                                "the funnel window, by team (quantile 0.5, 0.9)", ["team", "quantile"],
                                registry=registry)
        self.team_sla = Gauge("leadflow_team_sla_leads", "Leads captured in the funnel window whose first-touch "
                              "SLA was met or breached, by team", ["team", "outcome"], registry=registry)
        self.source_money = Gauge("leadflow_funnel_source_money", "Open pipeline and won revenue of the leads "
                                  "captured in the funnel window, by source, in SLA_REPORTING_CURRENCY (the funnel "
                                  "report's figures)", ["source", "figure"], registry=registry)
        self.campaign_cost_per_lead = Gauge("leadflow_funnel_campaign_cost_per_lead", "Spend on the funnel "
                                            "window's days per lead captured in it, by campaign, in "
                                            "SLA_REPORTING_CURRENCY", ["campaign"], registry=registry)


def top_named(counts: Sequence[tuple[str, dict[str, int]]], keep: int) -> dict[str, dict[str, int]]:
    """Stage counts per name, the ``keep`` names with the most captured leads by name, the rest as OTHER."""
    captured: Counter[str] = Counter()
    for name, stages in counts:
        captured[name] += stages["captured"]
    kept = {name for name, _ in sorted(captured.items(), key=lambda item: (-item[1], item[0]))[:keep]}
    summed: dict[str, dict[str, int]] = {}
    for name, stages in counts:
        into = summed.setdefault(name if name in kept else OTHER, dict.fromkeys(FUNNEL_STAGES, 0))
        for stage in FUNNEL_STAGES:
            into[stage] += stages[stage]
    return summed


def kept(name: str, names: dict[str, Any]) -> str:
    return name if name in names else OTHER


def set_money(gauges: FunnelGauges, deals: dict[str, revenue.MoneyGroup], spends: list[tuple[str | None, Decimal]],
              counts: Sequence[tuple[str, str, dict[str, int]]], sources: dict[str, Any],
              campaigns: dict[str, Any]) -> None:
    """The funnel report's pipeline and revenue by source and cost per lead by campaign, under the names the
    stage gauges keep (the rest summed as OTHER). ``deals``: the money of the leads with a deal, by source;
    ``spends``: the window's spend by campaign, converted; ``counts``: the leads per source and campaign."""
    money: dict[tuple[str, str], Decimal] = {}
    for source, group in deals.items():
        for figure, amount in (("pipeline", group.pipeline), ("revenue", group.revenue)):
            key = (kept(source, sources), figure)
            money[key] = money.get(key, Decimal(0)) + amount
    for (source, figure), amount in money.items():
        gauges.source_money.labels(source, figure).set(float(amount))
    captured: Counter[str] = Counter()
    for _, campaign, stages in counts:
        captured[kept(campaign, campaigns)] += stages["captured"]
    spent: dict[str, Decimal] = {}
    for spend_campaign, amount in spends:
        name = kept(spend_campaign or reports.NO_VALUE, campaigns)
        spent[name] = spent.get(name, Decimal(0)) + amount
    for name, amount in spent.items():
        cost = revenue.per(amount, captured[name])
        if cost is not None:
            gauges.campaign_cost_per_lead.labels(name).set(float(cost))


async def refresh_funnel_gauges(deps: Deps, gauges: FunnelGauges) -> None:
    settings, store = deps.settings, deps.store
    now = deps.platform.clock.now()
    since = now - timedelta(days=settings.funnel_gauge_window_days)
    async with deps.platform.db.transaction() as session:
        await as_background_scan(session)
        counts = await funnel_counts(session, since)
        teams = await team_speeds(session, since)
        rates = revenue.Rates(settings.reporting_currency, await store.currency_rate_tables(session),
                              now.astimezone(UTC).date())
        spends = await store.spend_between(session, since.astimezone(UTC).date(), now.astimezone(UTC).date())
        # Only the leads with a deal: the window may hold millions of leads, and the others add no money.
        deal_leads = await store.funnel_leads(session, since, now, "source", with_deal_only=True)
    # A source or team without leads in the window has no figures any more, not its last ones.
    for gauge in (gauges.by_source, gauges.by_campaign, gauges.team_speed, gauges.team_sla, gauges.source_money,
                  gauges.campaign_cost_per_lead):
        gauge.clear()
    named: list[dict[str, dict[str, int]]] = []
    for gauge, stages_of in ((gauges.by_source, [(source, stages) for source, _, stages in counts]),
                             (gauges.by_campaign, [(campaign, stages) for _, campaign, stages in counts])):
        named.append(top_named(stages_of, settings.funnel_gauge_names))
        for name, stages in named[-1].items():
            for stage, leads in stages.items():
                gauge.labels(name, stage).set(leads)
    deals, _ = revenue.money_groups(deal_leads, [], rates)
    campaign_spends, _ = reports.spend_in_reporting_currency(spends, since, now, "utm_campaign", rates)
    set_money(gauges, deals, campaign_spends, counts, named[0], named[1])
    for team in teams:
        for quantile, seconds in (("0.5", team.p50), ("0.9", team.p90)):
            if seconds is not None:
                gauges.team_speed.labels(team.team, quantile).set(seconds)
        gauges.team_sla.labels(team.team, "met").set(team.met)
        gauges.team_sla.labels(team.team, "breached").set(team.breached)
