"""Queue notifications in the handler's own transaction: the rep of a new assignment, the owner of a
lead whose SLA clock warns. Nothing is sent here; the sender sends after commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from leadflow_contracts import Event, LeadRouted, LeadScored, LeadSla
from leadflow_kit.uow import UnitOfWork
from leadflow_routing.bootstrap import Deps
from leadflow_routing.notifications import messages
from leadflow_routing.notifications.store import NewNotification
from leadflow_routing.store import StoredLead

log = logging.getLogger(__name__)


def new_notifications(cause_event_id: str, recipient: messages.Recipient, note: messages.NotificationContent,
                      now: datetime) -> list[NewNotification]:
    """One notification per channel the rep has set up."""
    return [NewNotification(f"ntf_{uuid.uuid4().hex}", cause_event_id, channel, recipient.team_id, note, now)
            for channel in messages.CHANNELS if channel in recipient.channels]


@dataclass(frozen=True)
class RoutedNotice:
    """A routing whose owner is to be told: the lead as scored and the ``lead.routed`` event."""

    scored: LeadScored
    routed: Event[LeadRouted]


@dataclass(frozen=True)
class KnownRecipients:
    """The reps whose channels a statement has read already (``read_for``), and those of them told through
    one (a scored batch's claim reads them with the reps' locks)."""

    read_for: frozenset[str] = frozenset()
    recipients: Mapping[str, messages.Recipient] = field(default_factory=dict)


async def notify_routed(uow: UnitOfWork[Deps], notices: Sequence[RoutedNotice], now: datetime,
                        known: KnownRecipients | None = None) -> None:
    """Tell each owner a lead was routed to them (first routing, re-route, claim, reassignment, hand-off):
    one read of the owners' channels for all ``notices`` (none for the owners ``known`` holds), one insert of
    what they queue, nothing more while no owner has a channel."""
    owned = [n for n in notices if n.routed.data.owner is not None]
    if not owned:
        return
    store, known = uow.deps.notifications, known or KnownRecipients()
    owners = {n.routed.data.owner.rep_id for n in owned if n.routed.data.owner is not None}
    recipients = {rep_id: known.recipients[rep_id] for rep_id in owners & known.read_for
                  if rep_id in known.recipients}
    recipients |= await store.recipients_of(uow.session, owners - known.read_for)
    queued: list[NewNotification] = []
    for notice in owned:
        routed = notice.routed.data
        recipient = recipients.get(routed.owner.rep_id) if routed.owner is not None else None
        if recipient is None:
            continue
        note = messages.content(messages.routed_kind(routed), notice.scored, recipient,
                                lead_url=uow.deps.settings.lead_url(routed.lead_id), routing_reason=routed.reason)
        queued += new_notifications(notice.routed.id, recipient, note, now)
    await store.enqueue(uow.session, queued)


async def notify_sla_warnings(events: list[Event[LeadSla]], leads: Mapping[str, StoredLead],
                              uow: UnitOfWork[Deps]) -> None:
    """Tell each warned lead's owner its SLA clock is running out (``leads``: the stored leads, by id); a
    warning about a former owner, or a closed or queued lead, tells nobody. One read of the owners'
    channels, one insert of what they queue."""
    told: list[tuple[Event[LeadSla], StoredLead]] = []
    for event in events:
        warning, lead = event.data, leads.get(event.data.lead_id)
        if warning.kind != "warning" or lead is None or lead.status == "closed" or lead.owner_rep_id is None:
            continue
        if warning.owner_rep_id and warning.owner_rep_id != lead.owner_rep_id:
            log.info("SLA warning for lead %s not sent: it is about former owner %s", warning.lead_id,
                     warning.owner_rep_id)
            continue
        told.append((event, lead))
    if not told:
        return
    store, now = uow.deps.notifications, uow.now()
    recipients = await store.recipients_of(uow.session, {lead.owner_rep_id for _, lead in told
                                                          if lead.owner_rep_id is not None})
    queued: list[NewNotification] = []
    for event, lead in told:
        recipient = recipients.get(lead.owner_rep_id) if lead.owner_rep_id is not None else None
        if recipient is None:
            continue
        note = messages.content("sla_warning", lead.scored, recipient, sla_due_at=event.data.due_at,
                                lead_url=uow.deps.settings.lead_url(event.data.lead_id))
        queued += new_notifications(event.id, recipient, note, now)
    await store.enqueue(uow.session, queued)
