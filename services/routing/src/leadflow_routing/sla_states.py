"""The SLA state routing knows of each lead: the last clock event sla published on ``leads.sla``.

sla owns the clocks, their policies and calendars; routing hears a clock when sla opens it
(``lead.sla_started``: "open" with its due time), warns and breaches ("warned", "breached"). Until the
opening reaches routing a queue's listing says "open" without a due time. A state counts only for the
clock started when the lead entered its queue: sla starts a clock at the time of the ``lead.routed``
event, which is the lead's ``routed_at``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from leadflow_contracts import Event, LeadSla, LeadSlaStarted

if TYPE_CHECKING:
    from leadflow_kit.uow import UnitOfWork
    from leadflow_routing.bootstrap import Deps

SlaStateKind = Literal["open", "warned", "breached"]


@dataclass(frozen=True)
class SlaSeen:
    """One lead's latest SLA event, as stored in ``lead_sla``."""

    lead_id: str
    clock_id: str
    kind: str
    started_at: datetime
    due_at: datetime
    breach_count: int
    at: datetime


@dataclass(frozen=True)
class SlaState:
    state: SlaStateKind
    due_at: datetime | None = None
    breach_count: int = 0


# The kind stored for an opened clock (warnings and breaches keep the kind sla gave them).
STARTED = "started"


def latest_per_lead(seen: list[SlaSeen]) -> list[SlaSeen]:
    """Each lead's latest event of the batch (one row per lead: a statement may write a row once)."""
    latest: dict[str, SlaSeen] = {}
    for one in seen:
        if one.lead_id not in latest or latest[one.lead_id].at <= one.at:
            latest[one.lead_id] = one
    return sorted(latest.values(), key=lambda s: s.lead_id)


def fired(events: list[Event[LeadSla]]) -> list[SlaSeen]:
    return [SlaSeen(e.data.lead_id, e.data.clock_id, e.data.kind, e.data.started_at, e.data.due_at,
                    e.data.breach_count, e.time) for e in events]


def opened(events: list[Event[LeadSlaStarted]]) -> list[SlaSeen]:
    return [SlaSeen(e.data.lead_id, e.data.clock_id, STARTED, e.data.started_at, e.data.due_at, 0, e.time)
            for e in events]


def sla_state(kind: str | None, due_at: datetime | None, breach_count: int | None) -> SlaState:
    """The listing's state from the lead's stored SLA row of its current clock (None: none heard of yet)."""
    if kind is None:
        return SlaState("open")
    if kind == STARTED:
        return SlaState("open", due_at)
    return SlaState("breached" if kind == "breach" else "warned", due_at, breach_count or 0)


async def record_sla_states(seen: list[SlaSeen], uow: UnitOfWork[Deps]) -> None:
    await uow.deps.store.record_sla_seen(uow.session, latest_per_lead(seen))
