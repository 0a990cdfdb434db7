"""The funnel as Prometheus gauges for the marketing and sales dashboard: the leads captured in the last
window (30 days by default) at each stage, by source and by campaign, and their speed to lead and SLA
outcomes by team (the funnel report's figures). One replica computes them from the lead table once a refresh
interval and stores them; every replica publishes the stored figures, so each reports the same whole funnel
while the window is scanned once, however many replicas run. UTM values are anyone's to make up, so only the
sources and campaigns with the most leads keep their name, the rest count as "(other)" (teams are admin
data)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import as_background_scan
from leadflow_sla import reports, revenue
from leadflow_sla.bootstrap import Deps
from leadflow_sla.domain import FUNNEL_STAGES
from leadflow_sla.funnel_gauges_store import (
    claim_figures,
    funnel_counts,
    give_up_figures,
    published_figures,
    save_figures,
    team_speeds,
)

OTHER = "(other)"

# A gauge's series as stored and published: by the FunnelGauges attribute, each series' label values then its
# value (JSON, in the figures' row).
Figures = dict[str, list[list[Any]]]
GAUGES = ("by_source", "by_campaign", "team_speed", "team_sla", "source_money", "campaign_cost_per_lead")


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
        # When the figures published were computed (None before the first).
        self.published_at: datetime | None = None

    def publish(self, figures: Figures, computed_at: datetime) -> None:
        """Every gauge set to ``figures``: a source or team without leads in the window has no figures any
        more, not its last ones."""
        for name in GAUGES:
            gauge: Gauge = getattr(self, name)
            gauge.clear()
            for *labels, value in figures.get(name, []):
                gauge.labels(*labels).set(value)
        self.published_at = computed_at


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


def money_figures(figures: Figures, deals: dict[str, revenue.MoneyGroup], spends: list[tuple[str | None, Decimal]],
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
        figures["source_money"].append([source, figure, float(amount)])
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
            figures["campaign_cost_per_lead"].append([name, float(cost)])


async def refresh_funnel_gauges(deps: Deps, gauges: FunnelGauges, wall: Clock | None = None) -> bool:
    """One round: compute and store the figures if nobody did within half a refresh interval and no other
    replica is computing them, else publish the stored ones if newer than this replica's. True when it
    computed them.

    Who computes when goes by ``wall`` (the system's clock by default), not by the service's clock: that one
    is the business's time (a test may hold it still), while the figures must follow the data as it changes."""
    settings, db = deps.settings, deps.platform.db
    now = deps.platform.clock.now()
    at = (wall or SystemClock()).now()
    interval = timedelta(seconds=settings.funnel_gauge_refresh_seconds)
    # A replica that dies computing holds the figures this long; then another computes them.
    lease_until = at + 2 * interval
    async with db.transaction() as session:
        computing = await claim_figures(session, at, lease_until, fresh_since=at - interval / 2)
    if not computing:
        async with db.transaction() as session:
            published = await published_figures(session)
        if published is not None and published[0] != gauges.published_at:
            gauges.publish(published[1], published[0])
        return False
    try:
        figures = await compute_funnel_figures(deps, now)
        async with db.transaction() as session:
            await save_figures(session, at, figures)
    except BaseException:
        with contextlib.suppress(Exception):
            async with db.transaction() as session:
                await give_up_figures(session, lease_until)
        raise
    gauges.publish(figures, at)
    return True


async def compute_funnel_figures(deps: Deps, now: datetime) -> Figures:
    """The gauges' figures over the window ending ``now``, read from the lead table."""
    settings, store = deps.settings, deps.store
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
    figures: Figures = {name: [] for name in GAUGES}
    named: list[dict[str, dict[str, int]]] = []
    for name, stages_of in (("by_source", [(source, stages) for source, _, stages in counts]),
                            ("by_campaign", [(campaign, stages) for _, campaign, stages in counts])):
        named.append(top_named(stages_of, settings.funnel_gauge_names))
        for kept_name, stages in named[-1].items():
            for stage, leads in stages.items():
                figures[name].append([kept_name, stage, leads])
    deals, _ = revenue.money_groups(deal_leads, [], rates)
    campaign_spends, _ = reports.spend_in_reporting_currency(spends, since, now, "utm_campaign", rates)
    money_figures(figures, deals, campaign_spends, counts, named[0], named[1])
    for team in teams:
        for quantile, seconds in (("0.5", team.p50), ("0.9", team.p90)):
            if seconds is not None:
                figures["team_speed"].append([team.team, quantile, seconds])
        figures["team_sla"].append([team.team, "met", team.met])
        figures["team_sla"].append([team.team, "breached", team.breached])
    return figures
