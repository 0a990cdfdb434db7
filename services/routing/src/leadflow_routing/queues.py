"""Queues people work: a rep (or the manager of the rep's team) claims a lead waiting in a queue; an
admin reassigns any lead to a rep or a queue, with a reason. A move is a routing decision like any
other, written by ``handlers.apply_decision`` in the route's transaction: the audit row in the lead's
assignment history, ``lead.routed`` (``reroute_reason`` "claimed" or "reassigned") for sla and every
other consumer, and the CRM webhook.

Who may move what comes from the API key's scopes: ``routing:write`` is the admin; a ``queues:work``
key acts for the reps its ``rep:<rep id>`` scopes name, and as the manager of the teams those reps
manage (``team.manager_rep_id``)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from leadflow_contracts import Event, LeadScored, new_event
from leadflow_kit.auth import Principal
from leadflow_kit.uow import UnitOfWork
from leadflow_routing import domain, handlers
from leadflow_routing.bootstrap import Deps
from leadflow_routing.store import StoredLead

ADMIN_SCOPE = "routing:write"
WORK_SCOPE = "queues:work"
REP_SCOPE_PREFIX = "rep:"

Refusal = Literal["forbidden", "conflict", "unknown"]


class LeadNotRouted(LookupError):
    pass


class MoveRefused(Exception):
    """A claim or reassignment that cannot be made: ``kind`` says why (the route's 403, 409 or 422)."""

    def __init__(self, kind: Refusal, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.field = kind, detail, field


@dataclass(frozen=True)
class Actor:
    """Who asks for a move: the key's name, the reps it acts for, and whether it is an admin."""

    key_name: str
    rep_ids: frozenset[str]
    admin: bool

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        reps = frozenset(scope.removeprefix(REP_SCOPE_PREFIX) for scope in principal.scopes
                         if scope.startswith(REP_SCOPE_PREFIX) and scope not in (REP_SCOPE_PREFIX, "rep:*"))
        return cls(principal.name, reps, principal.allows(ADMIN_SCOPE))


@dataclass(frozen=True)
class Claim:
    lead_id: str
    rep_id: str
    actor: Actor


@dataclass(frozen=True)
class Reassignment:
    """To a rep or (``rep_id`` None) to a queue."""

    lead_id: str
    rep_id: str | None
    queue: str | None
    reason: str
    actor: Actor


# -- rules ----------------------------------------------------------------------------------


def claim_refusal(actor: Actor, rep: domain.Rep, manager_rep_id: str | None) -> str | None:
    """Why ``actor`` may not claim for ``rep``, or None: an admin claims for anyone, a rep for itself,
    a manager for the reps of its team."""
    if actor.admin or rep.id in actor.rep_ids or (manager_rep_id is not None and manager_rep_id in actor.rep_ids):
        return None
    if not actor.rep_ids:
        return f"this API key acts for no rep: a key with '{WORK_SCOPE}' needs a '{REP_SCOPE_PREFIX}<rep id>' scope"
    return (f"this API key acts for rep(s) {', '.join(sorted(actor.rep_ids))}: it may claim for them and for "
            f"the reps of the teams they manage, not for rep '{rep.id}'")


def claim_decision(
    rep: domain.Rep, actor: Actor, queue: str | None, now: datetime, tier: str | None
) -> domain.Decision:
    by = f"rep {rep.id}" if rep.id in actor.rep_ids else f"'{actor.key_name}' for rep {rep.id}"
    return domain.Decision(
        "claimed", f"claimed from queue {queue} by {by}", rep=rep, team_id=rep.team_id,
        audit={"decided_at": now.isoformat(), "tier": tier, "from_queue": queue, "by_key": actor.key_name,
               "acting_for": sorted(actor.rep_ids), "admin": actor.admin},
    )


def reassign_decision(move: Reassignment, rep: domain.Rep | None, previous: StoredLead, queue: str | None,
                      now: datetime) -> domain.Decision:
    audit: dict[str, Any] = {"decided_at": now.isoformat(), "tier": previous.scored.tier,
                             "by_key": move.actor.key_name, "previous_owner_rep_id": previous.owner_rep_id,
                             "previous_queue": queue if previous.owner_rep_id is None else None}
    if rep is not None:
        return domain.Decision("reassigned", move.reason, rep=rep, team_id=rep.team_id, audit=audit)
    return domain.Decision("reassigned", move.reason, queue=move.queue, audit=audit)


def encode_cursor(queued_at: datetime, lead_id: str) -> str:
    """The opaque position after a page's last lead."""
    return base64.urlsafe_b64encode(json.dumps([queued_at.isoformat(), lead_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    """The position a cursor names, or None when it is not one this service made."""
    try:
        at, lead_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = (datetime.fromisoformat(at), str(lead_id))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    return position if position[0].tzinfo is not None else None


# -- use cases ------------------------------------------------------------------------------


async def claim_lead(uow: UnitOfWork[Deps], claim: Claim) -> handlers.Routed:
    """The rep takes a lead waiting in a queue; refused (MoveRefused) unless the key may act for the rep,
    the lead still waits and the rep is active."""
    store, session, now = uow.deps.store, uow.session, uow.now()
    lead = await _locked_routed_lead(uow, claim.lead_id)
    rep = await store.load_rep(session, claim.rep_id)
    if rep is None:
        raise MoveRefused("unknown", f"no rep '{claim.rep_id}'", "rep_id")
    team = await store.load_team(session, rep.team_id) if rep.team_id else None
    refusal = claim_refusal(claim.actor, rep, team.manager_rep_id if team else None)
    if refusal is not None:
        raise MoveRefused("forbidden", refusal)
    if lead.status == "closed":
        raise MoveRefused("conflict", f"lead '{lead.id}' is closed")
    if lead.status == "nurture":
        # Marketing's, not a sales queue: it goes to sales at its MQL moment (or an admin reassigns it).
        raise MoveRefused("conflict", f"lead '{lead.id}' waits in nurture, not in a sales queue")
    if lead.owner_rep_id is not None:
        raise MoveRefused("conflict", f"lead '{lead.id}' is already claimed: rep '{lead.owner_rep_id}' owns it")
    rep = await _active_rep(uow, claim.rep_id, [])
    queue = await store.lead_queue(session, lead.id)
    decision = claim_decision(rep, claim.actor, queue, now, lead.scored.tier)
    return await handlers.apply_decision(uow, lead, decision, _cause(lead, now), now,
                                         reroute=domain.Reroute("claimed"))


async def reassign_lead(uow: UnitOfWork[Deps], move: Reassignment) -> handlers.Routed:
    """An admin moves any open lead to another rep or to a queue, with a reason."""
    store, session, now = uow.deps.store, uow.session, uow.now()
    lead = await _locked_routed_lead(uow, move.lead_id)
    if lead.status == "closed":
        raise MoveRefused("conflict", f"lead '{lead.id}' is closed")
    previous = lead.owner_rep_id
    queue = await store.lead_queue(session, lead.id)
    rep: domain.Rep | None = None
    if move.rep_id is not None:
        if move.rep_id == previous:
            raise MoveRefused("conflict", f"rep '{previous}' already owns lead '{lead.id}'")
        rep = await _active_rep(uow, move.rep_id, [previous] if previous else [])
    else:
        if not await store.queue_exists(session, move.queue or ""):
            raise MoveRefused("unknown", f"no queue '{move.queue}'", "queue")
        if previous is None and queue == move.queue:
            raise MoveRefused("conflict", f"lead '{lead.id}' already waits in queue '{queue}'")
        if previous is not None:
            await store.lock_routing_rows(session, [], [previous], managers=False)
    decision = reassign_decision(move, rep, lead, queue, now)
    return await handlers.apply_decision(uow, lead, decision, _cause(lead, now), now,
                                         reroute=domain.Reroute("reassigned", previous))


async def _locked_routed_lead(uow: UnitOfWork[Deps], lead_id: str) -> StoredLead:
    lead = await uow.deps.store.lock_lead(uow.session, lead_id)
    if lead is None or lead.status == "new":
        raise LeadNotRouted(lead_id)
    return lead


async def _active_rep(uow: UnitOfWork[Deps], rep_id: str, also_lock: list[str]) -> domain.Rep:
    """The rep, row-locked with ``also_lock`` (the reps whose counters the move changes, by id)."""
    store = uow.deps.store
    await store.lock_routing_rows(uow.session, [], sorted({rep_id, *also_lock}), managers=False)
    rep = await store.load_rep(uow.session, rep_id)
    if rep is None:
        raise MoveRefused("unknown", f"no rep '{rep_id}'", "rep_id")
    if not rep.active:
        raise MoveRefused("conflict", f"rep '{rep_id}' is inactive")
    return rep


def _cause(lead: StoredLead, now: datetime) -> Event[LeadScored]:
    """What a move follows up: the lead as last scored, so its ``lead.routed`` carries the lead's
    correlation id and capture time like every other routing decision."""
    return new_event(lead.scored, source=handlers.SOURCE, subject=lead.id, correlation_id=lead.correlation_id,
                     lead_captured_at=lead.lead_captured_at, time=now)
