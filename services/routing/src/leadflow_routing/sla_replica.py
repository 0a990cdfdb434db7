"""routing's replica of sla's SLA configuration, and the ``sla`` block of the ``lead.routed`` webhook.

sla owns the SLA policies and reps' calendars and opens a lead's first-touch clock when it reads
``lead.routed``; routing cannot ask it for the due time while it builds the webhook (no synchronous call
between services). sla therefore publishes its configuration on the compacted ``sla.policies`` topic,
routing keeps a replica of it, and computes the clock sla will open with the same code
(``leadflow_contracts.sla_policy``) from the same inputs: the lead's tier, its team (the owner's, or the
queue's team), the owner's calendar and the routed event's time, which is when sla starts the clock.

The ``sla`` block is ``None`` while routing has replicated no policy yet, and for a kept owner (sla opens
no new clock then); sla's own ``lead.sla.started`` webhook stays the authoritative word on the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from leadflow_contracts import Event, LeadRouted, SlaCalendarChanged, SlaPolicyChanged
from leadflow_contracts.sla_policy import FALLBACK_TIER, Policy, plan_clock, policy_for

if TYPE_CHECKING:
    from leadflow_kit.uow import UnitOfWork
    from leadflow_routing.bootstrap import Deps
    from leadflow_routing.sla_replica_store import ReplicatedPolicies


async def replicate_policies(events: list[Event[SlaPolicyChanged]], uow: UnitOfWork[Deps]) -> None:
    for event in events:
        data = event.data
        await uow.deps.sla_replica.save_policy(uow.session, data.policy_id, data.policy, data.changed_at)


async def replicate_calendars(events: list[Event[SlaCalendarChanged]], uow: UnitOfWork[Deps]) -> None:
    for event in events:
        data = event.data
        hours = data.business_hours.model_dump(mode="json") if data.business_hours else None
        await uow.deps.sla_replica.save_calendar(uow.session, data.rep_id, hours, data.changed_at)


def clock_terms(routed: LeadRouted, routed_at: datetime, known: ReplicatedPolicies) -> dict[str, Any] | None:
    """The clock sla will open for ``routed`` (published at ``routed_at``), as the webhook shows it."""
    if not known.replicated or routed.nurture or routed.kept_owner:
        return None
    tier = routed.tier or FALLBACK_TIER
    team_id = routed.owner.team_id if routed.owner else routed.team_id
    policies = [
        Policy(id=policy_id, tier=terms.tier, target_seconds=terms.target_seconds, warning_ratio=terms.warning_ratio,
               breach_limit=terms.breach_limit, business_hours=terms.business_hours,
               use_owner_hours=terms.use_owner_hours, team_id=terms.team_id)
        for policy_id, terms in known.policies
    ]
    policy, calendar = policy_for(policies, tier, team_id, known.owner_hours)
    plan = plan_clock(routed_at, policy, calendar)
    return {
        "policy_id": policy.id,
        "tier": tier,
        "target_seconds": policy.target_seconds,
        "started_at": plan.started_at.isoformat(),
        "warning_at": plan.warning_at.isoformat(),
        "due_at": plan.due_at.isoformat(),
        "business_hours": calendar is not None,
    }


async def routed_clocks(
    uow: UnitOfWork[Deps], routings: Sequence[tuple[LeadRouted, datetime]]
) -> list[dict[str, Any] | None]:
    """The ``sla`` block of each ``lead.routed`` webhook (see the module's docstring), from one read of the
    replica for them all."""
    opening = [(routed, at) for routed, at in routings if not (routed.nurture or routed.kept_owner)]
    if not opening:
        return [None] * len(routings)
    tiers = sorted({routed.tier or FALLBACK_TIER for routed, _ in opening})
    owners = sorted({routed.owner.rep_id for routed, _ in opening if routed.owner})
    known = await uow.deps.sla_replica.snapshot(uow.session, tiers, owners)
    return [clock_terms(routed, at, known.for_lead(routed.tier or FALLBACK_TIER,
                                                   routed.owner.rep_id if routed.owner else None))
            for routed, at in routings]
