"""sla's SLA configuration, published on the compacted ``sla.policies`` topic for routing's replica.

Every admin change to a policy or a rep's calendar is published through the outbox in the transaction of
the change (keyed by the policy id, or ``rep:<rep id>``); a deletion is a ``None`` record followed by a
tombstone, so compaction forgets the key. At start-up sla republishes everything it holds, so a routing
whose replica is new (or missed a deletion compacted away) learns the current configuration.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import SlaCalendarChanged, SlaPolicyChanged, SlaPolicyTerms, new_event, topics
from leadflow_contracts.sla_policy import BusinessHours
from leadflow_kit.outbox import Outbox
from leadflow_sla.store import RepCalendar, StoredPolicy

if TYPE_CHECKING:
    from leadflow_sla.bootstrap import Deps

log = logging.getLogger(__name__)

SOURCE = "sla"


def calendar_key(rep_id: str) -> str:
    return f"rep:{rep_id}"


def policy_terms(policy: StoredPolicy) -> SlaPolicyTerms:
    return SlaPolicyTerms(
        tier=policy.tier, team_id=policy.team_id, target_seconds=policy.target_seconds,
        warning_ratio=policy.warning_ratio, breach_limit=policy.breach_limit,
        business_hours=BusinessHours.model_validate(policy.business_hours) if policy.business_hours else None,
        use_owner_hours=policy.use_owner_hours, active=policy.active,
    )


async def policy_saved(session: AsyncSession, outbox: Outbox, policy: StoredPolicy, now: datetime) -> None:
    data = SlaPolicyChanged(policy_id=policy.id, policy=policy_terms(policy), changed_at=policy.updated_at)
    await outbox.add(session, new_event(data, source=SOURCE, subject=policy.id, time=now))


async def policy_deleted(session: AsyncSession, outbox: Outbox, policy_id: str, now: datetime) -> None:
    data = SlaPolicyChanged(policy_id=policy_id, policy=None, changed_at=now)
    await outbox.add(session, new_event(data, source=SOURCE, subject=policy_id, time=now))
    outbox.add_tombstone(session, topics.SLA_POLICIES, policy_id)


async def calendar_saved(session: AsyncSession, outbox: Outbox, calendar: RepCalendar, now: datetime) -> None:
    data = SlaCalendarChanged(rep_id=calendar.rep_id, business_hours=BusinessHours.model_validate(
        calendar.business_hours), changed_at=calendar.updated_at)
    await outbox.add(session, new_event(data, source=SOURCE, subject=calendar_key(calendar.rep_id), time=now))


async def calendar_deleted(session: AsyncSession, outbox: Outbox, rep_id: str, now: datetime) -> None:
    key = calendar_key(rep_id)
    data = SlaCalendarChanged(rep_id=rep_id, business_hours=None, changed_at=now)
    await outbox.add(session, new_event(data, source=SOURCE, subject=key, time=now))
    outbox.add_tombstone(session, topics.SLA_POLICIES, key)


async def republish(deps: Deps) -> None:
    """Every policy and rep calendar sla holds, published again (a start-up hook)."""
    outbox, now = deps.platform.outbox, deps.platform.clock.now()
    async with deps.platform.db.transaction() as session:
        policies = await deps.store.list_policies(session)
        calendars = await deps.store.list_rep_calendars(session)
        for policy in policies:
            await policy_saved(session, outbox, policy, now)
        for calendar in calendars:
            await calendar_saved(session, outbox, calendar, now)
    log.info("published %d SLA policies and %d rep calendars on %s", len(policies), len(calendars),
             topics.SLA_POLICIES)
