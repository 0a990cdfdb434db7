"""What sla forgets: the timelines and clocks of leads closed long ago."""

from __future__ import annotations

from datetime import timedelta

from leadflow_kit.retention import RetentionRule
from leadflow_sla.settings import Settings

# Leads whose funnel ended (won, lost or folded into another lead) and that nothing changed since $1.
_CLOSED_LEADS = (
    "SELECT lead_id FROM lead WHERE (converted_at IS NOT NULL OR disqualified_at IS NOT NULL "
    "OR lost_at IS NOT NULL OR merged_into IS NOT NULL) AND updated_at < $1"
)


def closed_lead_rules(settings: Settings) -> list[RetentionRule]:
    keep = timedelta(days=settings.closed_lead_retention_days)
    return [
        RetentionRule("lead_event", f"lead_id IN ({_CLOSED_LEADS})", keep, name="lead_event_of_closed_leads"),
        RetentionRule("sla_notice", f"lead_id IN ({_CLOSED_LEADS})", keep, name="sla_notice_of_closed_leads"),
        RetentionRule("sla_clock", f"status <> 'open' AND lead_id IN ({_CLOSED_LEADS})", keep,
                      name="sla_clock_of_closed_leads"),
    ]
