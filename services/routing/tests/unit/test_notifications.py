"""Reps told at once, without I/O: the Slack Block Kit body and the email built from a notification,
and which assignments and SLA warnings queue a notification for whom."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow_contracts import LeadProfile, LeadScored
from leadflow_kit.fakes import fake_unit_of_work
from leadflow_routing import handlers
from leadflow_routing.domain import Rep
from leadflow_routing.notifications import messages
from leadflow_routing.notifications.messages import NotificationContent, Recipient

from .fakes import FakeRoutingStore, fake_deps
from .test_routing_handlers import NOW, breach, reroute, route, sales_team, scored

DUE = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def note(**changes: object) -> NotificationContent:
    values: dict[str, object] = {
        "kind": "assigned", "lead_id": "lead-1", "lead_name": "Grace <Hopper>", "company": "Acme & Co",
        "tier": "hot", "score": 82.0, "reasons": ["VP title (+20)", "Requested a demo (+30)"],
        "routing_reason": "round robin in sales", "sla_due_at": DUE, "lead_url": "https://app.example/leads/lead-1",
        "rep_id": "rep-a", "rep_name": "Ada", "email": "ada@example.com", "slack_user_id": "U024BE7LH",
    }
    return NotificationContent.model_validate({**values, **changes})


def recipient(rep_id: str, *channels: messages.Channel) -> Recipient:
    return Recipient(rep_id=rep_id, name=rep_id.title(), email=f"{rep_id}@example.com", slack_user_id="U0REP",
                     channels=list(channels))


# -- messages ---------------------------------------------------------------------------------


def test_the_slack_message_mentions_the_rep_and_links_the_lead_in_block_kit_with_a_text_fallback() -> None:
    body = messages.slack_message(note())

    headline, facts, reasons, actions = body["blocks"]
    assert headline["type"] == "section" and headline["text"]["type"] == "mrkdwn"
    assert headline["text"]["text"].startswith("<@U024BE7LH> New lead for you: ")
    assert "<https://app.example/leads/lead-1|Grace &lt;Hopper&gt;>" in headline["text"]["text"]
    assert "Acme &amp; Co" in headline["text"]["text"]
    assert {"type": "mrkdwn", "text": "*SLA due*\n2026-01-05 10:00 UTC"} in facts["fields"]
    assert {"type": "mrkdwn", "text": "*Tier / score*\nhot / 82"} in facts["fields"]
    assert reasons["text"]["text"] == "*Why this lead scored*\n• VP title (+20)\n• Requested a demo (+30)"
    [button] = actions["elements"]
    assert button["type"] == "button" and button["url"] == "https://app.example/leads/lead-1"
    assert body["text"].startswith("<@U024BE7LH> New lead for you: Grace <Hopper> (Acme & Co), SLA due 2026-01-05")
    assert body["text"].endswith("https://app.example/leads/lead-1")


def test_a_slack_message_without_due_time_or_reasons_leaves_them_out() -> None:
    body = messages.slack_message(note(sla_due_at=None, reasons=[], slack_user_id=None, kind="reassigned"))

    assert [block["type"] for block in body["blocks"]] == ["section", "section", "actions"]
    assert not any("SLA due" in field["text"] for field in body["blocks"][1]["fields"])
    assert body["text"].startswith("Lead reassigned to you: ")


def test_the_email_has_a_plain_text_and_an_html_part_and_a_message_id_from_the_notification() -> None:
    email = messages.email_message(note(kind="sla_warning"), notification_id="ntf_1", sender="LeadFlow <lf@x.io>",
                                   domain="leadflow.example", now=NOW)

    assert email["Message-ID"] == "<ntf_1@leadflow.example>"
    assert email["To"] == "ada@example.com" and email["From"] == "LeadFlow <lf@x.io>"
    assert email["Subject"] == "SLA warning: follow up soon: Grace <Hopper> (Acme & Co)"
    assert email.get_content_type() == "multipart/alternative"
    plain, rich = email.iter_parts()
    assert plain.get_content_type() == "text/plain" and rich.get_content_type() == "text/html"
    text = plain.get_content()
    assert "SLA due: 2026-01-05 10:00 UTC" in text and "- VP title (+20)" in text
    assert "Open the lead: https://app.example/leads/lead-1" in text
    markup = rich.get_content()
    assert "Grace &lt;Hopper&gt;" in markup and "Acme &amp; Co" in markup
    assert '<a href="https://app.example/leads/lead-1">' in markup


def test_the_score_reasons_come_strongest_first() -> None:
    lead = LeadScored.model_validate({
        "lead_id": "lead-1", "score": 40, "fit_grade": "B", "engagement_level": 2, "tier": "warm", "is_mql": False,
        "model_version": "v1", "lifecycle_stage": "lead", "profile": LeadProfile(first_name="Ada"),
        "breakdown": [{"rule_id": "a", "category": "fit", "points": 5, "reason": "Small"},
                      {"rule_id": "b", "category": "negative", "points": -25, "reason": "Student"},
                      {"rule_id": "c", "category": "behavior", "points": 10, "reason": "Webinar"}]})

    assert messages.score_reasons(lead) == ["Student (-25)", "Webinar (+10)", "Small (+5)"]
    assert messages.lead_name(lead) == "Ada"


# -- which events queue what ------------------------------------------------------------------


async def test_an_assignment_queues_one_notification_per_channel_of_the_new_owner() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    store.notifications.recipients["rep-a"] = recipient("rep-a", "slack", "email")

    [event] = await route(store, scored())

    queued = store.notifications.queued
    assert [(n.channel, n.content.kind, n.content.rep_id) for n in queued] == [
        ("slack", "assigned", "rep-a"), ("email", "assigned", "rep-a")]
    assert {n.cause_event_id for n in queued} == {event.id}
    assert queued[0].team_id == "sales" and queued[0].content.lead_url.endswith("/lead-1")


async def test_a_rep_without_channels_a_queued_lead_and_a_repeat_fill_queue_nothing() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a"))
    store.notifications.recipients["rep-a"] = recipient("rep-a", "email")
    await route(store, scored())
    await route(store, scored(form_key="pricing"))  # a repeat fill keeps the owner: no new assignment
    assert len(store.notifications.queued) == 1

    store.notifications.recipients.clear()
    await route(store, scored("lead-2"))
    store.reps["rep-a"] = Rep("rep-a", team_id="sales", active=False)
    await route(store, scored("lead-3"))  # nobody can take it: the fallback queue, no owner to tell
    assert len(store.notifications.queued) == 1


async def test_a_batch_reads_its_owners_channels_with_their_locks_and_only_owners_with_channels_are_told() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    store.notifications.recipients["rep-b"] = recipient("rep-b", "email")
    store.notifications.recipients["rep-c"] = recipient("rep-c")  # settings, but no channel

    events = await route(store, *(scored(f"lead-{n}") for n in range(1, 7)))

    # The claim's locks read every owner's channels: no read of their own.
    assert store.notifications.roster_reads == [["rep-a", "rep-b", "rep-c"]]
    assert store.notifications.recipient_reads == []
    assert [(n.content.rep_id, n.content.lead_id) for n in store.notifications.queued] == [
        ("rep-b", "lead-2"), ("rep-b", "lead-5")]
    assert {n.cause_event_id for n in store.notifications.queued} == {events[1].id, events[4].id}


async def test_a_batch_where_nobody_gets_an_owner_reads_no_channels() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a", active=False))

    await route(store, scored(), scored("lead-2"))

    assert store.notifications.recipient_reads == []


async def test_a_reroute_tells_the_new_owner_the_lead_was_reassigned_to_them() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    store.notifications.recipients["rep-b"] = recipient("rep-b", "slack")
    await route(store, scored())

    await reroute(store, breach(owner="rep-a"))

    [queued] = store.notifications.queued
    assert queued.content.kind == "reassigned" and queued.content.rep_id == "rep-b"


async def test_a_queued_lead_that_finds_a_rep_is_new_to_them_not_reassigned() -> None:
    store = FakeRoutingStore()
    sales_team(store, Rep("rep-a", active=False), fallback_queue="overflow")
    await route(store, scored())
    store.reps["rep-a"] = Rep("rep-a", team_id="sales")
    store.notifications.recipients["rep-a"] = recipient("rep-a", "email")

    await reroute(store, breach(owner=None))

    [queued] = store.notifications.queued
    assert queued.content.kind == "assigned" and queued.content.rep_id == "rep-a"


async def test_an_sla_warning_tells_the_owner_with_the_due_time_once() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    await route(store, scored())
    store.notifications.recipients["rep-a"] = recipient("rep-a", "email")
    warning = breach(owner="rep-a", kind="warning")
    due = warning.data.due_at

    await reroute(store, warning)
    await reroute(store, warning)  # redelivered
    await reroute(store, breach(owner="rep-z", kind="warning"))  # about a former owner

    [queued] = store.notifications.queued
    assert queued.content.kind == "sla_warning" and queued.content.sla_due_at == due
    assert queued.cause_event_id == warning.id and len(store.assignments) == 1


async def test_a_batch_of_warnings_and_a_breach_reads_the_owners_channels_once_and_queues_in_order() -> None:
    store = FakeRoutingStore()
    sales_team(store)
    await route(store, scored("lead-1"), scored("lead-2"), scored("lead-3"))  # round robin: rep-a, rep-b, rep-c
    for rep_id in ("rep-a", "rep-b"):
        store.notifications.recipients[rep_id] = recipient(rep_id, "email")
    reads_before, webhooks_before = len(store.notifications.recipient_reads), len(store.webhooks)
    warnings = [breach("lead-1", owner="rep-a", kind="warning"), breach("lead-2", owner="rep-b", kind="warning"),
                breach("lead-3", owner="rep-c", kind="warning")]
    uow, _, _ = fake_unit_of_work(fake_deps(store), NOW)

    await handlers.reroute_on_breaches([*warnings, breach("lead-1", owner="rep-a")], uow)

    # rep-c has no channel: told nobody; the others each once, from one read of the owners' channels.
    assert sorted(store.notifications.recipient_reads[reads_before]) == ["rep-a", "rep-b", "rep-c"]
    warned = [(n.content.rep_id, n.cause_event_id) for n in store.notifications.queued
              if n.content.kind == "sla_warning"]
    assert warned == [("rep-a", warnings[0].id), ("rep-b", warnings[1].id)]
    # Every notice's webhook, in the batch's order, before the re-route the breach caused.
    assert [(w.event_type, w.lead_id) for w in store.webhooks[webhooks_before:]] == [
        ("lead.sla.warning", "lead-1"), ("lead.sla.warning", "lead-2"), ("lead.sla.warning", "lead-3"),
        ("lead.sla.breach", "lead-1"), ("lead.routed", "lead-1")]
    assert store.leads["lead-1"].owner_rep_id != "rep-a"
