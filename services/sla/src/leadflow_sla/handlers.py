"""sla's use cases: put each lead event on its timelines and move the lead's facts and clocks; fire the
warnings and breaches that fell due; read a lead's timeline."""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from leadflow_contracts import (
    Event,
    LeadCaptured,
    LeadRouted,
    LeadScored,
    LeadSla,
    LeadTouched,
    follow_up,
    new_event,
    sla_policy,
)
from leadflow_kit.consumer import one_at_a_time
from leadflow_kit.uow import UnitOfWork
from leadflow_sla import domain, lifecycle
from leadflow_sla.domain import Fired, LeadChanges, LeadData, LeadFacts, Notice, SlaClock, ThresholdKind, Timeline
from leadflow_sla.notify import Notification, sla_notification

if TYPE_CHECKING:
    from leadflow_contracts.sla_policy import Policy
    from leadflow_sla.bootstrap import Deps

log = logging.getLogger(__name__)

SOURCE = "sla"


# --------------------------------------------------------------------------------------------
# Lead events: timelines, facts, clocks
# --------------------------------------------------------------------------------------------


@dataclass
class BatchClocks:
    """What a batch of lead events needs of the clocks' tables, read and written once per batch: the active
    policies with the calendars of the batch's owners (read at the batch's first need), and the clocks it
    opens (inserted together, before any other statement on a lead's clocks reads them, and at its end)."""

    owner_rep_ids: list[str]
    policies: list[Policy] | None = None
    calendars: dict[str, dict[str, Any]] = field(default_factory=dict)
    opened: list[SlaClock] = field(default_factory=list)

    @classmethod
    def of(cls, events: list[Event[LeadData]]) -> BatchClocks:
        owners = {evt.data.owner.rep_id for evt in events if isinstance(evt.data, LeadRouted) and evt.data.owner}
        return cls(sorted(owners))

    async def active_policies(self, uow: UnitOfWork[Deps]) -> list[Policy]:
        if self.policies is None:
            self.policies, self.calendars = await uow.deps.store.policies_and_calendars(
                uow.session, self.owner_rep_ids)
        return self.policies

    async def insert_opened(self, uow: UnitOfWork[Deps]) -> None:
        """Writes the clocks opened so far: the next statement on clocks sees them."""
        if self.opened:
            await uow.deps.store.insert_clocks(uow.session, self.opened)
            self.opened = []


async def record_lead_events(events: list[Event[LeadData]], uow: UnitOfWork[Deps]) -> None:
    """Put each event on the timeline of every lead it concerns, then update that lead's facts and clocks.

    A batch costs one statement for its timelines and leads' locks, one for the leads' changes, and when it
    opens clocks one read of the policies and calendars and one insert of its clocks, however many events it
    holds (a re-route, a touch or a re-score flushes the clocks opened before it: the clocks' other
    statements aside); the events still apply in order, each to the lead as the ones before it left it."""
    owned = [evt for evt in events if domain.belongs_to_a_lead(evt.data)]
    if not owned:
        return
    store, metrics = uow.deps.store, uow.deps.metrics
    records = [domain.timeline_record(evt) for evt in owned]
    clocks = BatchClocks.of(owned)
    leads, firsts = await store.record_and_lock(uow.session, records)
    changed: dict[str, LeadChanges] = {}
    for position, (evt, record) in enumerate(zip(one_at_a_time(owned), records, strict=True)):
        if position in firsts and isinstance(evt.data, LeadCaptured):
            uow.after_commit(metrics.leads_captured.labels(evt.data.form_key).inc)
        elif position in firsts and record.lead_captured_at is not None:
            seconds = max((record.at - record.lead_captured_at).total_seconds(), 0.0)
            uow.after_commit(functools.partial(metrics.pipeline_stage.labels(record.stage).observe, seconds))
        facts = leads[record.facts_lead_id]
        changes, updated = await update_lead(evt, facts, leads, clocks, uow)
        if changes:
            leads[facts.lead_id] = updated
            changed.setdefault(facts.lead_id, {}).update(changes)
    await clocks.insert_opened(uow)
    if changed:
        await store.update_leads(uow.session, changed)


async def update_lead(evt: Event[LeadData], facts: LeadFacts, leads: dict[str, LeadFacts], clocks: BatchClocks,
                      uow: UnitOfWork[Deps]) -> tuple[LeadChanges, LeadFacts]:
    """What ``evt`` changes on ``facts`` (the lead, locked by this transaction), its clocks' changes included,
    and the lead as they leave it; the caller writes them. ``leads``: the batch's leads as the events so far
    left them."""
    data, store = evt.data, uow.deps.store
    changes = domain.lead_changes(facts, evt)
    # Each copy of the lead's facts costs a construction of all its columns: one for the event's changes (none
    # when it changes nothing), one more only when the clocks change the lead too.
    updated = domain.changed_facts(facts, changes) if changes else facts
    merged_fill = domain.merged_fill(evt, facts.lead_id)
    if merged_fill is not None:
        await store.merge_into(uow.session, merged_fill, domain.captured_at_of(evt), facts.lead_id)
        if merged_fill in leads:
            leads[merged_fill] = domain.changed_facts(leads[merged_fill], {"merged_into": facts.lead_id})
    clock_changes: LeadChanges = {}
    if isinstance(data, LeadRouted) and data.nurture:
        await clocks.insert_opened(uow)
        await store.retire_clocks(uow.session, data.lead_id, evt.time, "nurture")
    elif isinstance(data, LeadScored) and facts.first_routed_at is not None and lifecycle.is_upgrade(
            facts.tier, data.tier):
        await tighten_clock(data, clocks, uow)
    elif isinstance(data, LeadRouted):
        # Clocks are only ever opened here, in the transaction that sets first_routed_at: a lead never
        # routed before has no older clock to supersede.
        clock_changes = await open_clock(evt, data, updated, clocks, uow,
                                         routed_before=facts.first_routed_at is not None)
    elif isinstance(data, LeadTouched) and data.touch_type in domain.STOPPING_TOUCHES:
        await clocks.insert_opened(uow)
        clock_changes = await stop_clocks(data, updated, uow)
    if clock_changes:
        changes.update(clock_changes)
        updated = domain.changed_facts(updated, clock_changes)
    return changes, updated


async def open_clock(
    evt: Event[LeadData], routed: LeadRouted, facts: LeadFacts, clocks: BatchClocks, uow: UnitOfWork[Deps], *,
    routed_before: bool,
) -> LeadChanges:
    """A routed (or re-routed) lead starts a fresh first-touch clock; an older open clock is superseded.
    Returns what changes on the lead."""
    if not domain.opens_clock(routed, routed_before):
        return {}
    store = uow.deps.store
    tier = domain.clock_tier(routed, facts)
    team_id = domain.routed_team_id(routed)
    rep_id = routed.owner.rep_id if routed.owner else None
    policies = await clocks.active_policies(uow)
    policy, calendar = sla_policy.policy_for(policies, tier, team_id, clocks.calendars.get(rep_id or ""))
    clock, changes = domain.new_clock(str(uuid.uuid4()), evt, routed, facts, tier, policy, calendar)
    clocks.opened.append(clock)
    # The due time is known only here (sla owns the policies): routing hands it on to the CRM.
    await uow.publish(follow_up(evt, domain.clock_started(clock, routed), source=SOURCE, subject=clock.lead_id,
                                time=uow.now()))
    if routed_before:
        await clocks.insert_opened(uow)
        await store.supersede_older_clocks(uow.session, routed.lead_id)
    return changes


async def tighten_clock(scored: LeadScored, clocks: BatchClocks, uow: UnitOfWork[Deps]) -> None:
    """A routed lead re-scored into a more urgent tier: its running clock, if untouched, takes that
    tier's deadline (counted from when it started) when it is earlier."""
    store = uow.deps.store
    await clocks.insert_opened(uow)
    clock = await store.lock_running_clock(uow.session, scored.lead_id)
    if clock is None:
        return
    policies = await clocks.active_policies(uow)
    # The clock keeps counting in the calendar it started in; only its target changes.
    policy = sla_policy.choose_policy(policies, scored.tier, clock.team_id)
    changes = lifecycle.tightened_clock(clock, scored.tier, policy, clock.calendar)
    if changes is not None:
        await store.update_clock(uow.session, clock.id, changes)
        log.info("SLA clock %s of lead %s tightened to %s: due %s", clock.id, scored.lead_id, scored.tier,
                 changes["due_at"])


async def stop_clocks(touch: LeadTouched, facts: LeadFacts, uow: UnitOfWork[Deps]) -> LeadChanges:
    """Stops the lead's open clocks started before the touch; returns what changes on the lead."""
    store, metrics = uow.deps.store, uow.deps.metrics
    stopped = await store.stop_clocks(uow.session, touch.lead_id, touch.occurred_at, touch.touch_type)
    changes, speed = domain.touch_changes(facts, touch, stopped)
    if speed is not None:
        observe = metrics.speed_to_lead.labels(speed.tier, speed.team).observe
        uow.after_commit(functools.partial(observe, speed.seconds))
    return changes


# --------------------------------------------------------------------------------------------
# Warnings and breaches
# --------------------------------------------------------------------------------------------


async def fire_due_clocks(uow: UnitOfWork[Deps], batch_size: int) -> tuple[list[Fired], int]:
    """Fire the passed thresholds of up to ``batch_size`` due clocks (claimed: another replica skips them);
    returns what fired and how many clocks were claimed.

    A round costs the same few statements however many clocks fell due (a business day's start can bring
    thousands at once): the claim, one insert of the notices, one update of the clocks, one insert of the
    notifications, and the outbox's."""
    store, now = uow.deps.store, uow.now()
    due = await store.claim_due_clocks(uow.session, now, batch_size)
    planned = [(clock, kind, str(uuid.uuid4())) for clock in due
               for kind in sla_policy.due_thresholds(now, clock.warning_at, clock.due_at, clock.warned_at is not None,
                                                     clock.breached_at is not None)]
    recorded = await store.record_notices(uow.session, [
        Notice(clock.id, kind, event_id, clock.lead_id, clock.warning_at if kind == "warning" else clock.due_at, now)
        for clock, kind, event_id in planned])
    fired: dict[str, list[Fired]] = {clock.id: [] for clock in due}
    breach_numbers: dict[str, int] = {}
    # A breach's number counts the lead's earlier breach notices, this round's included, as one by one. Counted
    # from the notices rather than kept on the lead row: the scheduler never waits for a lock the consumer may
    # hold (it holds lead rows, then clock rows; the scheduler holds clocks).
    breaches_so_far: dict[str, int] = {}
    notifications: list[Notification] = []
    for clock, kind, event_id in planned:
        if (clock.id, kind) not in recorded:
            log.error("SLA %s for clock %s was already emitted; not emitting again", kind, clock.id)
            continue
        number = 0
        if kind == "breach":
            number = 1 + breaches_so_far.get(clock.lead_id, recorded[(clock.id, kind)])
            breaches_so_far[clock.lead_id] = number
            breach_numbers[clock.id] = number
        event = await fire_threshold(clock, kind, number, event_id, now, uow)
        notifications.append(sla_notification(event, clock.target_seconds))
        fired[clock.id].append(Fired(clock.id, clock.lead_id, kind, event.id))
    await store.update_fired_clocks(uow.session, {
        clock.id: domain.fired_changes(clock, fired[clock.id], now, breach_numbers.get(clock.id, 0)) for clock in due})
    await store.enqueue_notifications(uow.session, notifications, now)
    return [f for clock in due for f in fired[clock.id]], len(due)


async def fire_threshold(
    clock: SlaClock, kind: ThresholdKind, breach_number: int, event_id: str, now: datetime, uow: UnitOfWork[Deps]
) -> Event[LeadSla]:
    """Publish the clock's warning or breach, its notice recorded."""
    sla_event = new_event(domain.threshold_data(clock, kind, breach_number), source=SOURCE, subject=clock.lead_id,
                          correlation_id=clock.correlation_id, lead_captured_at=clock.lead_captured_at, time=now,
                          event_id=event_id)
    await uow.publish(sla_event)
    counter = uow.deps.metrics.warnings if kind == "warning" else uow.deps.metrics.breaches
    uow.after_commit(counter.labels(clock.tier, domain.team_label(clock.team_id)).inc)
    log.info("SLA %s for lead %s (tier %s, due %s)", kind, clock.lead_id, clock.tier, clock.due_at)
    return sla_event


async def refresh_open_clocks(uow: UnitOfWork[Deps]) -> dict[str, int]:
    """Set the open-clocks gauge from the database, so every replica reports the same, whole count."""
    counts = domain.open_clocks_by_tier(await uow.deps.store.open_clock_counts(uow.session))
    for tier, count in counts.items():
        uow.deps.metrics.open_clocks.labels(tier).set(count)
    return counts


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


async def lead_timeline(lead_id: str, uow: UnitOfWork[Deps]) -> Timeline | None:
    """The lead's whole journey with its clocks; None for a lead sla has never heard of."""
    store = uow.deps.store
    await store.read_one_snapshot(uow.session)
    events = await store.timeline_events(uow.session, lead_id)
    facts = await store.lead_facts(uow.session, lead_id)
    clocks = await store.clocks_of_lead(uow.session, lead_id) if events or facts is not None else []
    return domain.timeline(lead_id, events, facts, clocks, uow.now())
