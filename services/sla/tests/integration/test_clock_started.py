"""Opening a first-touch clock publishes lead.sla_started.v1 with the clock's due time (sla owns the
policies; routing hands the due time on to the CRM as the lead.sla.started webhook)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from leadflow_contracts import LeadRouted, LeadSlaStarted, RoutedOwner, topics
from leadflow_kit.clock import FrozenClock


async def test_an_opened_clock_is_announced_with_its_due_time(sla_env: Any, apps: Any) -> None:
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    await apps.start(FrozenClock(t0), scheduler_interval_seconds=3600)
    lead_id = sla_env.new_lead_id()
    routed = LeadRouted(lead_id=lead_id, assignment_id="as-1", reason="test", tier="hot",
                        owner=RoutedOwner(rep_id="rep-ada", team_id="team-emea"))
    await sla_env.send(sla_env.lead_event(routed, lead_id, t0, t0 - timedelta(seconds=1), "routing"))

    events = await sla_env.collect(topics.SLA, lambda e: e.subject == lead_id, 1)
    assert [e.type for e in events] == [LeadSlaStarted.EVENT_TYPE]
    started = events[0].data
    assert isinstance(started, LeadSlaStarted)
    assert (started.tier, started.owner_rep_id, started.team_id, started.assignment_id) == (
        "hot", "rep-ada", "team-emea", "as-1")
    assert (started.started_at, started.due_at, started.target_seconds) == (t0, t0 + timedelta(minutes=5), 300)
    assert events[0].correlation_id == f"corr-{lead_id}"
