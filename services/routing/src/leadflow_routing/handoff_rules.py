"""The marketing-to-sales hand-off as plain rules: when a lead goes to sales, when it waits in nurture,
and when a lead the CRM sent back may be handed off again. No I/O, no clock: ``now`` is passed in.

A rule set's hand-off policy decides a lead's first fill: ``first_fill`` routes every lead at once;
``mql`` routes an MQL and holds everyone else in nurture (owner None, queue ``nurture``, no SLA clock).
A lead in nurture, whichever way it got there, goes to sales at the first re-score that finds it an
MQL (an activity, a model change, decay reversing, a repeat fill), once any cool-down has passed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from leadflow_contracts import LeadScored
from leadflow_routing import domain

# CRM touches that take a lead from sales back to marketing's nurture.
BACK_TO_NURTURE: frozenset[str] = frozenset({"disqualified", "recycled"})


def holds_in_nurture(ruleset: domain.RuleSet | None, scored: LeadScored) -> bool:
    """A new lead waits in nurture when the active rules hand off at the MQL moment and it is not one yet."""
    return ruleset is not None and ruleset.handoff == "mql" and not scored.is_mql


def ready_for_handoff(scored: LeadScored, handoff_after: datetime | None, now: datetime) -> bool:
    """A lead in nurture goes to sales when it is an MQL and its cool-down (if any) is over."""
    return scored.is_mql and (handoff_after is None or now >= handoff_after)


def cooldown_end(now: datetime, cooldown_seconds: float) -> datetime:
    return now + timedelta(seconds=cooldown_seconds)


def nurture_decision(
    reason: str, now: datetime, *, tier: str | None, ruleset_version: int | None = None,
    extra: dict[str, Any] | None = None,
) -> domain.Decision:
    """The lead waits in nurture: no rep, no team, the ``nurture`` holding queue."""
    audit: dict[str, Any] = {"decided_at": now.isoformat(), "tier": tier, "ruleset_version": ruleset_version,
                             "nurture": {"why": reason, **(extra or {})}}
    return domain.Decision("nurture", reason, queue=domain.NURTURE_QUEUE, ruleset_version=ruleset_version,
                           audit=audit)
