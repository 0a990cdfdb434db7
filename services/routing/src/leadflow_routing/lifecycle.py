"""The CRM's one subscription point for a lead's whole lifecycle: signed webhooks for capture, the
first MQL moment, every stage change, routing, CRM touches and the SLA clock (started, warning,
breach), each queued in the transaction of the event that caused it.

Subscriptions may filter on the lead's tier, team and form (``DeliveryFacts``): a fact routing does
not know yet (a captured lead has no tier or team) passes no filter on it. ``lead.routed`` itself is
queued by ``handlers.apply_decision``; its payload is ``routed_data``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from leadflow_contracts import Event, LeadCaptured, LeadRouted, LeadScored, LeadSla, LeadSlaStarted, LeadTouched
from leadflow_kit.uow import UnitOfWork
from leadflow_kit.webhooks import DeliveryFacts
from leadflow_routing import domain, sla_replica, sla_states
from leadflow_routing.bootstrap import Deps
from leadflow_routing.store import StoredLead, WebhookRequest

CAPTURED = "lead.captured"
MQL = "lead.mql"
STAGE_CHANGED = "lead.stage_changed"
ROUTED = "lead.routed"
# A repeat fill of a lead already routed tells the CRM what changed; the hand-off is not restarted.
UPDATED = "lead.updated"
TOUCHED = "lead.touched"
SLA_STARTED = "lead.sla.started"
SLA_WARNING = "lead.sla.warning"
SLA_BREACH = "lead.sla.breach"

# Every webhook type routing sends: a subscription naming another is refused.
EVENT_TYPES: tuple[str, ...] = (CAPTURED, MQL, STAGE_CHANGED, ROUTED, UPDATED, TOUCHED, SLA_STARTED, SLA_WARNING,
                                SLA_BREACH)


def lead_facts(lead: StoredLead) -> DeliveryFacts:
    return DeliveryFacts(tier=lead.scored.tier, team=lead.team_id, form=lead.scored.form_key)


# -- lead.routed: from handlers.apply_decision ---------------------------------------------------


async def routed_data(
    uow: UnitOfWork[Deps], scored: LeadScored, routed: LeadRouted, decision: domain.Decision, now: datetime
) -> dict[str, Any]:
    """What the CRM needs to create the record (``domain.webhook_data``), with the SLA clock sla will open
    for the hand-off (``sla``: computed from routing's replica of sla's policies; None when unknown)."""
    (clock,) = await sla_replica.routed_clocks(uow, [(routed, now)])
    return {**domain.webhook_data(scored, routed, decision, now), "sla": clock}


# -- lead.captured: from leads.captured -------------------------------------------------------


async def captured_wanted(deps: Deps) -> bool:
    """Whether any subscription takes ``lead.captured``: while none does, the fills are taken from
    ``leads.captured`` with this one read and no transaction (the consumer's ``wanted`` step)."""
    return await deps.store.webhook_wanted_now(deps.platform.db, [CAPTURED])


async def deliver_captured(events: list[Event[LeadCaptured]], uow: UnitOfWork[Deps]) -> None:
    """Queue ``lead.captured`` for each fill, in one statement that matches each to the subscriptions
    that take it (``captured_wanted`` found one; until then the fills came without a transaction)."""
    now = uow.now()
    await uow.deps.store.enqueue_webhooks(uow.session, [
        WebhookRequest(CAPTURED, event.data.lead_id, event.data.model_dump(mode="json"), now, event.correlation_id,
                       event.lead_captured_at, DeliveryFacts(form=event.data.form_key))
        for event in events
    ])


# -- lead.mql and lead.stage_changed: from leads.scored --------------------------------------


def stage_changed(scored: LeadScored) -> bool:
    return scored.previous_stage is not None and scored.previous_stage != scored.lifecycle_stage


def scored_webhooks(event: Event[LeadScored], team_id: str | None, first_mql: bool, now: datetime
                    ) -> list[WebhookRequest]:
    """``lead.mql`` (on the lead's first MQL moment) and ``lead.stage_changed`` for one scored event,
    to queue in that order (a batch queues its events' together: ``handlers.ScoredBatch``)."""
    scored = event.data
    facts = DeliveryFacts(tier=scored.tier, team=team_id, form=scored.form_key)
    types = [t for t, due in ((MQL, first_mql), (STAGE_CHANGED, stage_changed(scored))) if due]
    return [WebhookRequest(t, scored.lead_id, scored_data(scored, now), now, event.correlation_id,
                           event.lead_captured_at, facts) for t in types]


def scored_data(scored: LeadScored, now: datetime) -> dict[str, Any]:
    """The lead as scoring saw it at this moment: who, the score explained, the stage move."""
    return {
        "lead_id": scored.lead_id,
        "lifecycle_stage": scored.lifecycle_stage,
        "previous_stage": scored.previous_stage,
        "stage_changed_at": (scored.stage_changed_at or now).isoformat(),
        "trigger": scored.trigger,
        "form_key": scored.form_key,
        "profile": scored.profile.model_dump(mode="json"),
        "account": scored.account.model_dump(mode="json") if scored.account else None,
        "score": {
            "score": scored.score, "fit_grade": scored.fit_grade, "engagement_level": scored.engagement_level,
            "tier": scored.tier, "is_mql": scored.is_mql, "model_version": scored.model_version,
            "explanation": [line.model_dump(mode="json") for line in scored.breakdown],
        },
    }


# -- lead.sla.*: from leads.sla ----------------------------------------------------------------


async def deliver_sla(
    events: Sequence[Event[LeadSla]] | Sequence[Event[LeadSlaStarted]], leads: Mapping[str, StoredLead],
    uow: UnitOfWork[Deps],
) -> None:
    """Queue ``lead.sla.started``, ``lead.sla.warning`` or ``lead.sla.breach`` with the clock's due time, for
    each of ``events`` in one statement; ``leads``: their stored leads (read for the subscriptions' filters)."""
    webhooks: list[WebhookRequest] = []
    for event in events:
        data, lead = event.data, leads.get(event.data.lead_id)
        facts = DeliveryFacts(tier=data.tier, team=data.team_id or (lead.team_id if lead else None),
                              form=lead.scored.form_key if lead else None)
        event_type = SLA_STARTED if isinstance(data, LeadSlaStarted) else f"lead.sla.{data.kind}"
        webhooks.append(WebhookRequest(
            event_type, data.lead_id, {**data.model_dump(mode="json"), "event_id": event.id}, uow.now(),
            event.correlation_id, event.lead_captured_at, facts,
        ))
    await uow.deps.store.enqueue_webhooks(uow.session, webhooks)


async def deliver_sla_started(events: list[Event[LeadSlaStarted]], uow: UnitOfWork[Deps]) -> None:
    """One for every routing that opened a clock: its due time for the queue listings (one statement a
    batch), and the webhooks (two statements more), while nobody subscribes one statement a batch more."""
    await sla_states.record_sla_states(sla_states.opened(events), uow)
    store = uow.deps.store
    if not await store.webhook_wanted(uow.session, [SLA_STARTED]):
        return
    await deliver_sla(events, await store.leads_for_webhook(uow.session, {e.data.lead_id for e in events}), uow)


# -- lead.touched: from the CRM touch route ---------------------------------------------------


async def deliver_touched(
    uow: UnitOfWork[Deps], lead: StoredLead, touched: Event[LeadTouched], now: datetime
) -> None:
    await uow.deps.store.enqueue_webhook(uow.session, WebhookRequest(
        TOUCHED, lead.id, {**touched.data.model_dump(mode="json"), "owner_rep_id": lead.owner_rep_id}, now,
        touched.correlation_id, touched.lead_captured_at, lead_facts(lead),
    ))
