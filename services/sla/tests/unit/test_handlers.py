"""sla's use cases through the in-memory store: a lead's clock opens, warns, breaches, stops on a touch,
stays stopped through a repeat fill, and starts again for the new rep on a re-route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow_contracts import (
    Attribution,
    DataQuality,
    Event,
    EventData,
    LeadActivity,
    LeadCaptured,
    LeadContact,
    LeadDelivered,
    LeadEnriched,
    LeadProfile,
    LeadRouted,
    LeadSla,
    LeadTouched,
    RoutedOwner,
    new_event,
)
from leadflow_contracts.sla_policy import BusinessHours, Policy
from leadflow_kit.fakes import RecordingOutbox, fake_unit_of_work
from leadflow_sla import handlers
from leadflow_sla.bootstrap import Deps

from .fakes import FakeSlaStore, fake_deps

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday
SECOND = timedelta(seconds=1)
LEAD = "lead-1"


class Sla:
    """sla over the fake store, at a time the test sets."""

    def __init__(self, store: FakeSlaStore | None = None) -> None:
        self.store = store or FakeSlaStore()
        self.deps: Deps = fake_deps(self.store)
        self.uow, self.outbox, self.clock = fake_unit_of_work(self.deps, T0)

    async def receive(self, *data: EventData, at: datetime | None = None) -> None:
        """Each of ``data`` in a batch of its own."""
        for item in data:
            await handlers.record_lead_events([self.event(item, at)], self.uow)

    async def receive_together(self, *data: EventData, at: datetime | None = None) -> None:
        """All of ``data`` in one batch."""
        await handlers.record_lead_events([self.event(item, at) for item in data], self.uow)

    def event(self, data: EventData, at: datetime | None) -> Event[Any]:
        return new_event(data, source="test", subject=getattr(data, "lead_id", None) or LEAD,
                         time=at or self.clock.now(), lead_captured_at=T0 - SECOND)

    def stage_observations(self, stage: str) -> float:
        return self.deps.platform.metrics.registry.get_sample_value(
            "leadflow_pipeline_stage_seconds_count", {"stage": stage}) or 0.0

    async def fire_at(self, at: datetime) -> list[tuple[str, str]]:
        self.clock.set(at)
        fired, _ = await handlers.fire_due_clocks(self.uow, 200)
        return [(f.lead_id, f.kind) for f in fired]


def routed(rep: str = "rep-ada", tier: str | None = "hot", team: str = "team-emea", **extra: Any) -> LeadRouted:
    return LeadRouted(lead_id=LEAD, assignment_id=f"as-{rep}", reason="test", tier=tier,
                      owner=RoutedOwner(rep_id=rep, team_id=team), **extra)


def touched(at: datetime, touch_type: str = "contacted") -> LeadTouched:
    return LeadTouched(lead_id=LEAD, touch_id=f"t-{at.timestamp()}", touch_type=touch_type,
                       occurred_at=at)


def captured_fill() -> LeadCaptured:
    return LeadCaptured(lead_id=LEAD, form_key="demo", submitted_at=T0 - SECOND,
                        contact=LeadContact(email="ada@example.com"), attribution=Attribution(utm_source="ads"))


def sla_events(outbox: RecordingOutbox) -> list[LeadSla]:
    return [e.data for e in outbox.of_type("lead.sla.v1")]


@pytest.fixture
def sla() -> Sla:
    return Sla()


async def test_a_routed_lead_opens_a_clock_for_its_owner_at_the_tiers_target(sla: Sla) -> None:
    await sla.receive(routed())
    [clock] = sla.store.clocks_of(LEAD)
    assert (clock.status, clock.owner_rep_id, clock.team_id, clock.tier) == ("open", "rep-ada", "team-emea", "hot")
    assert (clock.started_at, clock.warning_at, clock.due_at) == (T0, T0 + 240 * SECOND, T0 + 300 * SECOND)
    assert sla.store.leads[LEAD].first_routed_at == T0


async def test_the_warning_fires_at_its_threshold_and_not_before(sla: Sla) -> None:
    await sla.receive(routed())
    assert await sla.fire_at(T0 + 239 * SECOND) == []
    assert await sla.fire_at(T0 + 240 * SECOND) == [(LEAD, "warning")]
    [warning] = sla_events(sla.outbox)
    assert (warning.kind, warning.owner_rep_id, warning.due_at) == ("warning", "rep-ada", T0 + 300 * SECOND)
    assert [n.event_type for n in sla.store.notifications] == ["lead.sla.warning"]


async def test_the_breach_fires_at_the_due_time_once(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.fire_at(T0 + 240 * SECOND)
    assert await sla.fire_at(T0 + 299 * SECOND) == []
    assert await sla.fire_at(T0 + 300 * SECOND) == [(LEAD, "breach")]
    assert await sla.fire_at(T0 + 3600 * SECOND) == []
    breach = sla_events(sla.outbox)[-1]
    assert (breach.kind, breach.breach_count, breach.escalate) == ("breach", 1, False)
    [clock] = sla.store.clocks_of(LEAD)
    assert (clock.warned_at, clock.breached_at, clock.next_fire_at) == (T0 + 240 * SECOND, T0 + 300 * SECOND, None)
    assert sla.store.notifications[-1].text.startswith("SLA breach: hot lead lead-1")


async def test_a_clock_found_late_fires_its_warning_then_its_breach(sla: Sla) -> None:
    await sla.receive(routed())
    assert await sla.fire_at(T0 + 3600 * SECOND) == [(LEAD, "warning"), (LEAD, "breach")]


async def test_a_threshold_already_emitted_is_not_emitted_again(sla: Sla) -> None:
    await sla.receive(routed())
    [clock] = sla.store.clocks_of(LEAD)
    await sla.fire_at(T0 + 240 * SECOND)
    sla.store.clocks[clock.id] = clock  # as if the clock's update had been lost: the notice still counts
    assert await sla.fire_at(T0 + 241 * SECOND) == []
    assert len(sla_events(sla.outbox)) == 1


async def test_a_touch_stops_the_clock_and_the_lead_met_its_sla(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.receive(touched(T0 + 120 * SECOND))
    [clock] = sla.store.clocks_of(LEAD)
    assert (clock.status, clock.stopped_at, clock.stop_reason) == ("stopped", T0 + 120 * SECOND, "contacted")
    lead = sla.store.leads[LEAD]
    assert (lead.sla_outcome, lead.first_touch_at, lead.speed_to_lead_seconds) == ("met", T0 + 120 * SECOND, 121.0)
    assert await sla.fire_at(T0 + 3600 * SECOND) == []


async def test_a_touch_after_the_breach_stops_the_clock_but_the_lead_stays_breached(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.fire_at(T0 + 300 * SECOND)
    await sla.receive(touched(T0 + 400 * SECOND))
    assert sla.store.leads[LEAD].sla_outcome == "breached"
    assert sla.store.clocks_of(LEAD)[0].status == "stopped"


async def test_accepting_a_lead_does_not_stop_its_clock(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.receive(touched(T0 + 60 * SECOND, "accepted"))
    assert sla.store.clocks_of(LEAD)[0].status == "open"
    assert sla.store.leads[LEAD].accepted_at == T0 + 60 * SECOND
    assert await sla.fire_at(T0 + 240 * SECOND) == [(LEAD, "warning")]


async def test_a_repeat_fill_after_the_touch_keeps_the_clock_stopped(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.receive(touched(T0 + 120 * SECOND))
    await sla.receive(routed(kept_owner=True), at=T0 + 600 * SECOND)
    assert [c.status for c in sla.store.clocks_of(LEAD)] == ["stopped"]
    assert await sla.fire_at(T0 + 7200 * SECOND) == []
    assert sla.store.leads[LEAD].rep_id == "rep-ada"


async def test_a_repeat_fill_of_an_untouched_lead_keeps_its_running_deadline(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.receive(routed(kept_owner=True), at=T0 + 200 * SECOND)
    [clock] = sla.store.clocks_of(LEAD)
    assert (clock.status, clock.due_at) == ("open", T0 + 300 * SECOND)


async def test_a_reroute_opens_a_new_clock_for_the_new_rep_and_supersedes_the_old(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.fire_at(T0 + 300 * SECOND)
    await sla.receive(routed("rep-bob", reroute=True, reroute_reason="sla_breach"), at=T0 + 301 * SECOND)
    old, new = sla.store.clocks_of(LEAD)
    assert (old.owner_rep_id, old.status, old.stop_reason) == ("rep-ada", "superseded", "rerouted")
    assert (new.owner_rep_id, new.status, new.due_at) == ("rep-bob", "open", T0 + 601 * SECOND)
    assert await sla.fire_at(T0 + 601 * SECOND) == [(LEAD, "warning"), (LEAD, "breach")]
    second_breach = sla_events(sla.outbox)[-1]
    # The default policy escalates from a lead's second breach on.
    assert (second_breach.owner_rep_id, second_breach.breach_count, second_breach.escalate) == ("rep-bob", 2, True)


async def test_a_touch_that_overtook_the_routing_starts_the_clock_stopped(sla: Sla) -> None:
    await sla.receive(touched(T0 + 5 * SECOND))
    await sla.receive(routed(), at=T0)
    [clock] = sla.store.clocks_of(LEAD)
    assert (clock.status, clock.stopped_at, clock.next_fire_at) == ("stopped", T0 + 5 * SECOND, None)
    assert sla.store.leads[LEAD].sla_outcome == "met"


async def test_a_lead_routed_without_a_tier_gets_the_cold_clock(sla: Sla) -> None:
    await sla.receive(routed(tier=None))
    [clock] = sla.store.clocks_of(LEAD)
    assert (clock.tier, clock.due_at) == ("cold", T0 + timedelta(hours=24))


async def test_a_team_policy_wins_over_the_tiers_default() -> None:
    sla = Sla(FakeSlaStore(policies=[
        Policy(id="hot-default", tier="hot", target_seconds=600),
        Policy(id="hot-emea", tier="hot", target_seconds=120, warning_ratio=0.5, team_id="team-emea"),
    ]))
    await sla.receive(routed())
    [clock] = sla.store.clocks_of(LEAD)
    assert (clock.policy_id, clock.warning_at, clock.due_at) == ("hot-emea", T0 + 60 * SECOND, T0 + 120 * SECOND)


async def test_a_policy_in_the_owners_hours_counts_only_their_working_time() -> None:
    hours = BusinessHours(timezone="UTC", days=[0, 1, 2, 3, 4], start="09:00", end="10:02")
    sla = Sla(FakeSlaStore(policies=[Policy(id="hot", tier="hot", target_seconds=300, use_owner_hours=True)],
                           calendars={"rep-ada": hours.model_dump(mode="json")}))
    await sla.receive(routed())
    [clock] = sla.store.clocks_of(LEAD)
    # Two working minutes left on Monday, three more from 09:00 on Tuesday.
    assert clock.due_at == datetime(2026, 11, 24, 9, 3, tzinfo=UTC)


async def test_a_breach_event_marks_the_lead_breached(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.fire_at(T0 + 300 * SECOND)
    await sla.receive(*sla_events(sla.outbox))
    lead = sla.store.leads[LEAD]
    assert (lead.sla_outcome, lead.breach_count) == ("breached", 1)


async def test_an_anonymous_visitors_activity_goes_on_no_timeline(sla: Sla) -> None:
    await sla.receive(LeadActivity(activity_id="a-1", activity_type="page_view", occurred_at=T0, visitor_id="v-1"))
    assert sla.store.timelines == {} and sla.store.leads == {}


async def test_a_captured_lead_reaches_the_funnel_with_its_source(sla: Sla) -> None:
    await sla.receive(LeadCaptured(lead_id=LEAD, form_key="demo", submitted_at=T0 - SECOND,
                                   contact=LeadContact(email="ada@example.com"),
                                   attribution=Attribution(utm_source="newsletter", utm_campaign="launch")))
    lead = sla.store.leads[LEAD]
    assert (lead.form_key, lead.source, lead.utm_campaign, lead.captured_at) == (
        "demo", "newsletter", "launch", T0 - SECOND)


async def test_a_lead_is_counted_captured_once_even_when_its_enrichment_arrives_first(sla: Sla) -> None:
    # Topics are not ordered with each other: lead.enriched may reach sla before lead.captured.
    enriched = LeadEnriched(lead_id=LEAD, captured_lead_id=LEAD, form_key="demo", profile=LeadProfile(),
                            original=LeadContact(), quality=DataQuality(score=80))
    await sla.receive(enriched, captured_fill(), captured_fill())

    captured = sla.deps.platform.metrics.registry.get_sample_value(
        "leadflow_leads_captured_total", {"form": "demo"})
    assert captured == 1


async def test_the_timeline_shows_each_owner_change_and_the_running_clock(sla: Sla) -> None:
    await sla.receive(routed())
    await sla.receive(routed("rep-bob", reroute=True, reroute_reason="sla_breach"), at=T0 + 301 * SECOND)
    sla.clock.set(T0 + 361 * SECOND)
    timeline = await handlers.lead_timeline(LEAD, sla.uow)
    assert timeline is not None
    assert [(c["from_rep_id"], c["to_rep_id"]) for c in timeline.owner_changes] == [
        (None, "rep-ada"), ("rep-ada", "rep-bob")]
    assert (timeline.sla["state"], timeline.sla["current"]["owner_rep_id"]) == ("open", "rep-bob")
    assert timeline.sla["current"]["remaining_seconds"] == 240.0


async def test_a_lead_never_seen_has_no_timeline(sla: Sla) -> None:
    assert await handlers.lead_timeline("nobody", sla.uow) is None


async def test_the_open_clocks_gauge_counts_every_tier(sla: Sla) -> None:
    await sla.receive(routed())
    assert await handlers.refresh_open_clocks(sla.uow) == {"hot": 1, "warm": 0, "cold": 0}



async def test_a_lead_s_events_in_one_batch_apply_in_order_as_one_by_one() -> None:
    story = (captured_fill(), routed(), touched(T0 + 60 * SECOND, "accepted"), touched(T0 + 120 * SECOND),
             routed("rep-bob", reroute=True, reroute_reason="manual"))
    alone, together = Sla(), Sla()
    await alone.receive(*story)
    await together.receive_together(*story)

    assert together.store.leads == alone.store.leads
    assert [(c.owner_rep_id, c.status, c.stop_reason, c.due_at) for c in together.store.clocks_of(LEAD)] == \
        [(c.owner_rep_id, c.status, c.stop_reason, c.due_at) for c in alone.store.clocks_of(LEAD)]
    assert [e.event_type for e in together.store.timelines[LEAD]] == [e.event_type for e in alone.store.timelines[LEAD]]
    # The re-route is not the lead's first routing: each stage is measured once, in one batch as one by one.
    assert together.stage_observations("routed") == alone.stage_observations("routed") == 1


async def test_what_a_clock_settles_on_the_lead_counts_for_the_batchs_later_events_as_one_by_one() -> None:
    # The touch overtook the routing: the clock starts stopped and settles the outcome, which the later
    # touch and the re-route, in the same batch, see as they would in batches of their own.
    delivered = LeadDelivered(lead_id=LEAD, webhook_id="w-1", subscription_id="crm",
                              event_type_delivered="lead.routed.v1", status="delivered", attempt=1, at=T0)
    story = (captured_fill(), touched(T0 + 5 * SECOND), routed(), delivered,
             touched(T0 + 90 * SECOND, "meeting_booked"), routed("rep-bob", reroute=True, reroute_reason="manual"))
    alone, together = Sla(), Sla()
    await alone.receive(*story)
    await together.receive_together(*story)

    assert together.store.leads == alone.store.leads
    assert together.store.leads[LEAD].sla_outcome == "met"
    assert [(c.owner_rep_id, c.status, c.stopped_at) for c in together.store.clocks_of(LEAD)] == \
        [(c.owner_rep_id, c.status, c.stopped_at) for c in alone.store.clocks_of(LEAD)]


async def test_leads_in_one_batch_keep_their_own_facts_and_clocks(sla: Sla) -> None:
    other = "lead-2"
    await sla.receive_together(routed(), LeadRouted(lead_id=other, assignment_id="as-2", reason="test", tier="cold",
                                                    owner=RoutedOwner(rep_id="rep-cy", team_id="team-emea")),
                               touched(T0 + 30 * SECOND))

    assert [c.status for c in sla.store.clocks_of(LEAD)] == ["stopped"]
    assert [(c.status, c.owner_rep_id, c.tier) for c in sla.store.clocks_of(other)] == [("open", "rep-cy", "cold")]
    assert (sla.store.leads[LEAD].rep_id, sla.store.leads[other].rep_id) == ("rep-ada", "rep-cy")
    assert sla.store.leads[LEAD].speed_to_lead_seconds == 31.0  # from the capture, a second before T0


async def test_a_batch_opens_its_clocks_with_one_policy_read_and_one_insert_as_one_by_one() -> None:
    hours = BusinessHours(timezone="UTC", days=[0, 1, 2, 3, 4], start="09:00", end="10:02").model_dump(mode="json")

    def store() -> FakeSlaStore:
        return FakeSlaStore(policies=[
            Policy(id="hot-emea", tier="hot", target_seconds=120, team_id="team-emea"),
            Policy(id="warm-own-hours", tier="warm", target_seconds=300, use_owner_hours=True),
            Policy(id="cold", tier="cold", target_seconds=900),
        ], calendars={"rep-ada": hours, "rep-bob": hours})

    story = [LeadRouted(lead_id=f"lead-{n}", assignment_id=f"as-{n}", reason="test", tier=tier,
                        owner=RoutedOwner(rep_id=rep, team_id=team))
             for n, (tier, rep, team) in enumerate([("hot", "rep-ada", "team-emea"), ("hot", "rep-cy", "team-us"),
                                                     ("warm", "rep-ada", "team-us"), ("warm", "rep-cy", "team-emea"),
                                                     ("cold", "rep-bob", "team-emea")])]
    alone, together = Sla(store()), Sla(store())
    await alone.receive(*story)
    await together.receive_together(*story)

    def clocks(sla: Sla) -> list[tuple[Any, ...]]:
        return [(c.lead_id, c.tier, c.owner_rep_id, c.policy_id, c.business_hours, c.warning_at, c.due_at, c.status)
                for c in sla.store.clocks.values()]

    assert clocks(together) == clocks(alone)
    assert [c[3] for c in clocks(together)] == ["hot-emea", None, "warm-own-hours", "warm-own-hours", "cold"]
    assert [c[4] is not None for c in clocks(together)] == [False, False, True, False, False]
    assert together.store.leads == alone.store.leads
    started = [e.data.lead_id for e in together.outbox.of_type("lead.sla_started.v1")]
    assert started == [e.data.lead_id for e in alone.outbox.of_type("lead.sla_started.v1")] == \
        [r.lead_id for r in story]
    assert (together.store.policy_reads, together.store.clock_inserts) == (1, 1)
    assert (alone.store.policy_reads, alone.store.clock_inserts) == (5, 5)
