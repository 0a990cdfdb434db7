"""What a rep is told, pure: the content of a notification (made when it is queued) and the Slack
Block Kit message and the email built from it (when it is sent)."""

from __future__ import annotations

import html
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from leadflow_contracts import LeadRouted, LeadScored

NotificationKind = Literal["assigned", "reassigned", "sla_warning"]
Channel = Literal["slack", "email"]
CHANNELS: tuple[Channel, ...] = ("slack", "email")
# Slack caps a section's text at 3,000 characters and a field at 2,000; reasons beyond these are cut.
MAX_REASONS = 8
SECTION_LIMIT = 3000

HEADLINES: dict[NotificationKind, str] = {
    "assigned": "New lead for you",
    "reassigned": "Lead reassigned to you",
    "sla_warning": "SLA warning: follow up soon",
}


class Recipient(BaseModel):
    """A rep as notifications reach them."""

    rep_id: str
    name: str
    team_id: str | None = None
    email: str | None = None
    slack_user_id: str | None = None
    channels: list[Channel] = Field(default_factory=list)


class NotificationContent(BaseModel):
    """Everything a message says, fixed when the notification is queued (stored as JSON)."""

    kind: NotificationKind
    lead_id: str
    lead_name: str
    company: str | None = None
    tier: str | None = None
    score: float | None = None
    reasons: list[str] = Field(default_factory=list)
    routing_reason: str | None = None
    sla_due_at: datetime | None = None
    lead_url: str
    rep_id: str
    rep_name: str
    email: str | None = None
    slack_user_id: str | None = None


def lead_name(scored: LeadScored) -> str:
    profile = scored.profile
    name = " ".join(part for part in (profile.first_name, profile.last_name) if part)
    return name or profile.email or scored.lead_id


def score_reasons(scored: LeadScored) -> list[str]:
    """The score's explanation, strongest first."""
    lines = sorted(scored.breakdown, key=lambda line: -abs(line.points))[:MAX_REASONS]
    return [f"{line.reason} ({line.points:+g})" for line in lines]


def content(
    kind: NotificationKind, scored: LeadScored, recipient: Recipient, *, lead_url: str,
    routing_reason: str | None = None, sla_due_at: datetime | None = None,
) -> NotificationContent:
    return NotificationContent(
        kind=kind, lead_id=scored.lead_id, lead_name=lead_name(scored), company=scored.profile.company,
        tier=scored.tier, score=scored.score, reasons=score_reasons(scored), routing_reason=routing_reason,
        sla_due_at=sla_due_at, lead_url=lead_url, rep_id=recipient.rep_id, rep_name=recipient.name,
        email=recipient.email, slack_user_id=recipient.slack_user_id,
    )


def routed_kind(routed: LeadRouted) -> NotificationKind:
    """A lead taken from another rep is reassigned; one routed afresh or taken from a queue is new."""
    return "reassigned" if routed.previous_owner_rep_id else "assigned"


def _due_text(due: datetime | None) -> str | None:
    return None if due is None else due.strftime("%Y-%m-%d %H:%M %Z").strip()


def _summary(note: NotificationContent) -> str:
    company = f" ({note.company})" if note.company else ""
    return f"{HEADLINES[note.kind]}: {note.lead_name}{company}"


def _facts(note: NotificationContent) -> list[tuple[str, str]]:
    facts = [("Company", note.company or "unknown")]
    if note.tier is not None:
        facts.append(("Tier / score", f"{note.tier} / {note.score:g}" if note.score is not None else note.tier))
    due = _due_text(note.sla_due_at)
    if due is not None:
        facts.append(("SLA due", due))
    if note.routing_reason:
        facts.append(("Why you", note.routing_reason))
    return facts


# -- Slack ------------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(note: NotificationContent) -> dict[str, Any]:
    """An incoming-webhook body: Block Kit blocks, and ``text`` for notifications and old clients."""
    mention = f"<@{note.slack_user_id}> " if note.slack_user_id else ""
    company = f" at {slack_escape(note.company)}" if note.company else ""
    headline = (f"{mention}{HEADLINES[note.kind]}: *<{note.lead_url}|{slack_escape(note.lead_name)}>*{company}")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline[:SECTION_LIMIT]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{slack_escape(value)}"[:2000]}
                                       for label, value in _facts(note)]},
    ]
    if note.reasons:
        reasons = "\n".join(f"• {slack_escape(reason)}" for reason in note.reasons)
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": f"*Why this lead scored*\n{reasons}"[:SECTION_LIMIT]}})
    blocks.append({"type": "actions", "elements": [{
        "type": "button", "text": {"type": "plain_text", "text": "Open lead"}, "url": note.lead_url,
        "action_id": "open_lead"}]})
    text = f"{mention}{_summary(note)}"
    due = _due_text(note.sla_due_at)
    if due is not None:
        text += f", SLA due {due}"
    return {"text": f"{text} {note.lead_url}", "blocks": blocks}


# -- email ------------------------------------------------------------------------------------


def message_id(notification_id: str, domain: str) -> str:
    """The same notification always has the same Message-ID, so a resend is recognisably a copy."""
    return f"<{notification_id}@{domain}>"


def email_message(note: NotificationContent, *, notification_id: str, sender: str, domain: str,
                  now: datetime) -> EmailMessage:
    """A multipart/alternative email: a plain-text part and an HTML part saying the same."""
    if not note.email:
        raise ValueError(f"rep {note.rep_id} has no email address for notifications")
    message = EmailMessage()
    message["Subject"] = _summary(note)
    message["From"] = sender
    message["To"] = note.email
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(notification_id, domain)
    facts = _facts(note)
    lines = [f"Hi {note.rep_name},", "", f"{_summary(note)}.", ""]
    lines += [f"{label}: {value}" for label, value in facts]
    if note.reasons:
        lines += ["", "Why this lead scored:", *[f"- {reason}" for reason in note.reasons]]
    lines += ["", f"Open the lead: {note.lead_url}"]
    message.set_content("\n".join(lines) + "\n")
    message.add_alternative(_email_html(note, facts), subtype="html")
    return message


def _email_html(note: NotificationContent, facts: list[tuple[str, str]]) -> str:
    e = html.escape
    rows = "".join(f"<tr><th align=\"left\">{e(label)}</th><td>{e(value)}</td></tr>" for label, value in facts)
    reasons = "".join(f"<li>{e(reason)}</li>" for reason in note.reasons)
    why = f"<p>Why this lead scored:</p><ul>{reasons}</ul>" if reasons else ""
    return (
        f"<html><body><p>Hi {e(note.rep_name)},</p>"
        f"<p><strong>{e(HEADLINES[note.kind])}:</strong> "
        f"<a href=\"{e(note.lead_url)}\">{e(note.lead_name)}</a></p>"
        f"<table>{rows}</table>{why}"
        f"<p><a href=\"{e(note.lead_url)}\">Open the lead</a></p></body></html>\n"
    )
