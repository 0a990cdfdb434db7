"""The funnel as Prometheus gauges for the marketing and sales dashboard: the leads captured in the last
window (30 days by default) at each stage, by source and by campaign, and their speed to lead and SLA
outcomes by team (the funnel report's figures). Read from the lead table, so every replica reports the same
whole figures; UTM values are anyone's to make up, so only the sources and campaigns with the most leads
keep their name, the rest count as "(other)" (teams are admin data)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from prometheus_client import CollectorRegistry, Gauge

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


async def refresh_funnel_gauges(deps: Deps, gauges: FunnelGauges) -> None:
    settings = deps.settings
    since = deps.platform.clock.now() - timedelta(days=settings.funnel_gauge_window_days)
    async with deps.platform.db.transaction() as session:
        counts = await funnel_counts(session, since)
        teams = await team_speeds(session, since)
    # A source or team without leads in the window has no figures any more, not its last ones.
    for gauge in (gauges.by_source, gauges.by_campaign, gauges.team_speed, gauges.team_sla):
        gauge.clear()
    for gauge, named in ((gauges.by_source, [(source, stages) for source, _, stages in counts]),
                         (gauges.by_campaign, [(campaign, stages) for _, campaign, stages in counts])):
        for name, stages in top_named(named, settings.funnel_gauge_names).items():
            for stage, leads in stages.items():
                gauge.labels(name, stage).set(leads)
    for team in teams:
        for quantile, seconds in (("0.5", team.p50), ("0.9", team.p90)):
            if seconds is not None:
                gauges.team_speed.labels(team.team, quantile).set(seconds)
        gauges.team_sla.labels(team.team, "met").set(team.met)
        gauges.team_sla.labels(team.team, "breached").set(team.breached)
