"""The SLA state routing knows of each lead: the last warning or breach sla published on ``leads.sla``.

sla owns the clocks, their policies and calendars; routing only hears a clock when it fires. A queue's
listing therefore says "open" (due time unknown to routing) until the clock warns, then "warned" or
"breached" with the due time sla computed. A state counts only for the clock started when the lead
entered its queue: sla starts a clock at the time of the ``lead.routed`` event, which is the lead's
``routed_at``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from leadflow_contracts import Event, LeadSla

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


def latest_per_lead(events: list[Event[LeadSla]]) -> list[SlaSeen]:
    """Each lead's latest event of the batch (one row per lead: a statement may write a row once)."""
    latest: dict[str, SlaSeen] = {}
    for event in events:
        sla = event.data
        seen = SlaSeen(sla.lead_id, sla.clock_id, sla.kind, sla.started_at, sla.due_at, sla.breach_count, event.time)
        if sla.lead_id not in latest or latest[sla.lead_id].at <= seen.at:
            latest[sla.lead_id] = seen
    return sorted(latest.values(), key=lambda s: s.lead_id)


def sla_state(kind: str | None, due_at: datetime | None, breach_count: int | None) -> SlaState:
    """The listing's state from the lead's stored SLA row of its current clock (None: none fired yet)."""
    if kind is None:
        return SlaState("open")
    return SlaState("breached" if kind == "breach" else "warned", due_at, breach_count or 0)


async def record_sla_states(events: list[Event[LeadSla]], uow: UnitOfWork[Deps]) -> None:
    await uow.deps.store.record_sla_seen(uow.session, latest_per_lead(events))
