"""How the hand-off lifecycle moves a running first-touch clock: a tier upgrade of an assigned, untouched
lead tightens it; a downgrade never loosens it; a lead sent to nurture has none.

The tightening lives in sla, not routing: the clock is sla's state, sla already reads every ``lead.scored``,
and an upgrade changes no owner, so routing has nothing to decide or announce. No I/O here.
"""

from __future__ import annotations

from typing import Any

from leadflow_contracts.sla_policy import BusinessHours, Policy, Tier, next_fire_at, plan_clock
from leadflow_sla.domain import SlaClock

# Higher is more urgent (a shorter default target).
TIER_URGENCY: dict[str, int] = {"cold": 0, "warm": 1, "hot": 2}


def is_upgrade(before: str | None, after: str) -> bool:
    """Whether a re-score moved the lead to a more urgent tier."""
    return TIER_URGENCY.get(after, 0) > TIER_URGENCY.get(before or "cold", 0)


def tightened_clock(
    clock: SlaClock, tier: Tier, policy: Policy, calendar: BusinessHours | None
) -> dict[str, Any] | None:
    """The changes that put a running clock on ``tier``'s policy, counted from when the clock started,
    when that deadline is earlier than its own; None otherwise (a clock is never loosened, and one that
    already breached has done its work)."""
    if clock.status != "open" or clock.breached_at is not None or not is_upgrade(clock.tier, tier):
        return None
    plan = plan_clock(clock.started_at, policy, calendar)
    if plan.due_at >= clock.due_at:
        return None
    return {
        "tier": tier, "policy_id": policy.id, "target_seconds": policy.target_seconds,
        "warning_ratio": policy.warning_ratio, "breach_limit": policy.breach_limit,
        "warning_at": plan.warning_at, "due_at": plan.due_at,
        "next_fire_at": next_fire_at(plan.warning_at, plan.due_at, clock.warned_at is not None, False),
    }
