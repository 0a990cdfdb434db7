"""Reps told at once, through the real stack: routing (real PostgreSQL and Kafka) emails a real SMTP
server started here (aiosmtpd) and posts to a local Slack stand-in that checks the Block Kit shape.
Each message arrives exactly once, also when the SMTP server and Slack are down at first."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet, InvalidToken
from routing_harness import (
    ADMIN,
    Env,
    Running,
    produce,
    running,
    scored,
    start_local_server,
    stop_local_server,
)
from sqlalchemy import text
from sqlalchemy.engine import Connection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leadflow_contracts import LeadSla, new_event
from leadflow_kit.db import Database
from leadflow_routing import tables
from leadflow_stack.procs import free_port
from leadflow_stack.testing import eventually

pytestmark = pytest.mark.integration

TEXT_TYPES = {"mrkdwn", "plain_text"}


def block_kit_problems(body: Any) -> list[str]:
    """What Slack would refuse in an incoming-webhook body (the subset of Block Kit we send)."""
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
        return ["no text fallback"]
    blocks = body.get("blocks")
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return ["blocks must be a list of 1-50"]
    problems: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "section":
            texts = ([block["text"]] if "text" in block else []) + block.get("fields", [])
            if not texts or len(block.get("fields", [])) > 10:
                problems.append("a section needs text or up to 10 fields")
            problems += [f"bad text object {t}" for t in texts
                         if t.get("type") not in TEXT_TYPES or not 0 < len(t.get("text", "")) <= 3000]
        elif kind == "actions":
            for element in block.get("elements", []):
                if element.get("type") != "button" or element.get("text", {}).get("type") != "plain_text":
                    problems.append(f"bad button {element}")
                if not str(element.get("url", "")).startswith(("http://", "https://")):
                    problems.append("a button's url must be absolute")
        else:
            problems.append(f"unexpected block type {kind}")
    return problems


@dataclass
class Slack:
    """An incoming-webhook stand-in: 400 for a body Slack would refuse, ``failures`` 503s first, else "ok"."""

    failures: int = 0
    port: int = field(default_factory=free_port)
    messages: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    calls: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/secret"

    async def receive(self, request: Request) -> Response:
        self.calls += 1
        body = await request.json()
        problems = block_kit_problems(body)
        if problems:
            self.refused += problems
            return JSONResponse({"error": problems}, status_code=400)
        if self.calls <= self.failures:
            return Response("service_unavailable", status_code=503)
        self.messages.append(body)
        return Response("ok")

    async def start(self) -> None:
        app = Starlette(routes=[Route("/services/T000/B000/secret", self.receive, methods=["POST"])])
        self._server, self._task = await start_local_server(app, self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            await stop_local_server(self._server, self._task)


class Mailbox:
    """The SMTP server's handler: every message it accepted, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


@contextlib.asynccontextmanager
async def smtp_server(port: int | None = None) -> AsyncIterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port or free_port())
    await asyncio.to_thread(controller.start)
    try:
        yield mailbox, controller.port
    finally:
        await asyncio.to_thread(controller.stop)


@contextlib.asynccontextmanager
async def slack_receiver(failures: int = 0) -> AsyncIterator[Slack]:
    slack = Slack(failures)
    await slack.start()
    try:
        yield slack
    finally:
        await slack.stop()


def notify_settings(slack: Slack, smtp_port: int) -> dict[str, Any]:
    return {"notify_slack_webhook_url": slack.url, "smtp_host": "127.0.0.1", "smtp_port": smtp_port,
            "smtp_security": "none", "smtp_from": "LeadFlow <leadflow@test.example>",
            "smtp_message_id_domain": "test.example", "notify_lead_base_url": "https://leadflow.test/leads",
            "notify_poll_interval_seconds": 0.1, "notify_retry_schedule_seconds": [0.3] * 8,
            "notify_jitter_ratio": 0.0}


async def rep_with_channels(svc: Running, *channels: str) -> str:
    """A rep of a new team, told through ``channels``; an account owner, so a lead of theirs is theirs."""
    suffix = uuid.uuid4().hex[:8]
    team_id, rep_id = f"team-{suffix}", f"rep-{suffix}"
    assert (await svc.post("/v1/admin/teams", json={"id": team_id, "name": team_id})).status_code == 201
    created = await svc.post("/v1/admin/reps", json={"id": rep_id, "name": "Ada Lovelace", "team_id": team_id,
                                                     "email": f"{rep_id}@sales.example"})
    assert created.status_code == 201, created.text
    put = await svc.client.put(f"/v1/admin/reps/{rep_id}/notifications", headers=ADMIN,
                               json={"channels": list(channels), "slack_user_id": "U024BE7LH"})
    assert put.status_code == 200, put.text
    return rep_id


async def notifications(svc: Running, **params: str) -> list[dict[str, Any]]:
    response = await svc.get("/v1/admin/notifications", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


async def all_sent(svc: Running, lead_id: str, count: int) -> list[dict[str, Any]]:
    found = await notifications(svc, lead_id=lead_id)
    return found if len(found) == count and all(n["status"] == "sent" for n in found) else []


async def test_an_assignment_reaches_slack_and_the_smtp_server_once_each(env: Env) -> None:
    async with slack_receiver() as slack, smtp_server() as (mailbox, port):
        async with running(env.settings(**notify_settings(slack, port))) as svc:
            rep_id = await rep_with_channels(svc, "slack", "email")
            lead = scored(owner_rep_id=rep_id, tier="hot")
            await produce(env.infra.bootstrap_servers, env.prefix, [lead])
            sent = await eventually(lambda: all_sent(svc, lead.subject, 2), what="both notifications sent")
            await asyncio.sleep(1.0)  # ten more sender rounds: nothing is sent again

        assert slack.refused == [] and len(slack.messages) == 1 and len(mailbox.messages) == 1
        [message] = slack.messages
        assert message["blocks"][0]["text"]["text"].startswith("<@U024BE7LH> New lead for you: ")
        assert f"https://leadflow.test/leads/{lead.subject}" in message["text"]
        assert "VP title (+20)" in message["blocks"][2]["text"]["text"]
        [mail] = mailbox.messages
        email_row = next(n for n in sent if n["channel"] == "email")
        assert mail["Message-ID"] == f"<{email_row['id']}@test.example>"
        assert mail["To"] == f"{rep_id}@sales.example" and "Acme" in mail["Subject"]
        plain, rich = mail.iter_parts()
        assert plain.get_content_type() == "text/plain" and rich.get_content_type() == "text/html"
        assert "Why this lead scored:" in plain.get_content() and "<a href=" in rich.get_content()
        assert {n["attempts"] for n in sent} == {1}


async def test_a_notification_is_retried_until_slack_and_smtp_are_back_and_arrives_once(env: Env) -> None:
    smtp_port = free_port()
    async with (
        slack_receiver(failures=2) as slack,
        running(env.settings(**notify_settings(slack, smtp_port))) as svc,
    ):
        rep_id = await rep_with_channels(svc, "slack", "email")
        lead = scored(owner_rep_id=rep_id)
        await produce(env.infra.bootstrap_servers, env.prefix, [lead])

        async def email_failed() -> bool:
            return any(n["channel"] == "email" and n["attempts"] >= 2 and n["last_error"]
                       for n in await notifications(svc, lead_id=lead.subject))

        await eventually(email_failed, what="an email attempt failed while the SMTP server is down")
        async with smtp_server(smtp_port) as (mailbox, _):
            sent = await eventually(lambda: all_sent(svc, lead.subject, 2), what="both sent once back")
            await asyncio.sleep(1.0)
        metrics = (await svc.client.get("/metrics")).text

    assert len(slack.messages) == 1 and slack.calls == 3 and len(mailbox.messages) == 1
    by_channel = {n["channel"]: n for n in sent}
    assert by_channel["slack"]["attempts"] == 3 and by_channel["email"]["attempts"] >= 3
    assert 'leadflow_routing_notifications_total{channel="slack",outcome="failed"} 2.0' in metrics
    assert 'leadflow_routing_notifications_total{channel="slack",outcome="sent"} 1.0' in metrics


async def test_an_sla_warning_tells_the_owner_with_the_due_time(env: Env) -> None:
    smtp_port = free_port()
    async with (
        slack_receiver() as slack,
        smtp_server(smtp_port) as (mailbox, _),
        running(env.settings(**notify_settings(slack, smtp_port))) as svc,
    ):
        rep_id = await rep_with_channels(svc, "email")
        lead = scored(owner_rep_id=rep_id)
        await produce(env.infra.bootstrap_servers, env.prefix, [lead])
        await eventually(lambda: all_sent(svc, lead.subject, 1), what="the assignment email")
        due = datetime(2026, 12, 3, 17, 30, tzinfo=UTC)
        warning = new_event(LeadSla(lead_id=lead.subject, clock_id="clk-1", kind="warning", tier="warm",
                                    owner_rep_id=rep_id, started_at=due - timedelta(hours=1), due_at=due),
                            source="sla", subject=lead.subject)
        await produce(env.infra.bootstrap_servers, env.prefix, [warning, warning])  # the second is a redelivery
        sent = await eventually(lambda: all_sent(svc, lead.subject, 2), what="the warning email")
        await asyncio.sleep(1.0)

    assert slack.messages == [] and len(mailbox.messages) == 2
    assert {n["kind"] for n in sent} == {"assigned", "sla_warning"}
    warned = mailbox.messages[1]
    assert warned["Subject"].startswith("SLA warning: follow up soon: ")
    assert "SLA due: 2026-12-03 17:30 UTC" in warned.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_teams_slack_webhook_is_stored_encrypted_and_wins_over_the_global_one(env: Env) -> None:
    async with slack_receiver() as global_slack, slack_receiver() as team_slack, smtp_server() as (_, port):
        async with running(env.settings(**notify_settings(global_slack, port))) as svc:
            rep_id = await rep_with_channels(svc, "slack")
            team_id = (await svc.get(f"/v1/admin/reps/{rep_id}")).json()["team_id"]
            put = await svc.client.put(f"/v1/admin/teams/{team_id}/slack-webhook", headers=ADMIN,
                                       json={"url": team_slack.url})
            assert put.status_code == 200 and put.json()["configured"] and "url" not in put.json()
            shown = (await svc.get(f"/v1/admin/teams/{team_id}/slack-webhook")).json()
            assert shown == {**put.json(), "updated_at": shown["updated_at"]} and "secret" not in str(shown)
            lead = scored(owner_rep_id=rep_id)
            await produce(env.infra.bootstrap_servers, env.prefix, [lead])
            await eventually(lambda: all_sent(svc, lead.subject, 1), what="the Slack message")

        db = Database(env.database_url)
        try:
            async with db.transaction() as session:
                stored = (await session.execute(
                    text("SELECT url_ciphertext FROM team_slack_webhook WHERE team_id = :t"), {"t": team_id},
                )).scalar_one()
        finally:
            await db.dispose()
    assert "secret" not in stored and "127.0.0.1" not in stored
    assert len(team_slack.messages) == 1 and global_slack.messages == []


async def test_notification_settings_refuse_what_cannot_be_sent(env: Env) -> None:
    async with running(env.settings()) as svc:
        put = svc.client.put
        missing = await put("/v1/admin/reps/nobody/notifications", headers=ADMIN, json={"channels": []})
        assert missing.status_code == 404
        rep_id = (await svc.post("/v1/admin/reps", json={"name": "No Mail"})).json()["id"]
        no_address = await put(f"/v1/admin/reps/{rep_id}/notifications", headers=ADMIN,
                               json={"channels": ["email"]})
        assert no_address.status_code == 422 and no_address.json()["errors"][0]["field"] == "email"
        no_slack_id = await put(f"/v1/admin/reps/{rep_id}/notifications", headers=ADMIN,
                                json={"channels": ["slack"]})
        assert no_slack_id.status_code == 422
        bad_url = await put("/v1/admin/teams/any/slack-webhook", headers=ADMIN, json={"url": "ftp://x"})
        assert bad_url.status_code == 422
        off = await put(f"/v1/admin/reps/{rep_id}/notifications", headers=ADMIN, json={"channels": []})
        assert off.status_code == 200 and off.json()["channels"] == []


async def test_the_migration_builds_the_notification_tables_as_declared(env: Env) -> None:
    ours = {"rep_notification", "rep_notification_settings", "team_slack_webhook"}

    def differences(connection: Connection) -> list[Any]:
        found = compare_metadata(MigrationContext.configure(connection), tables.metadata)
        return [d for d in found if any(name in repr(d) for name in ours)]

    db = Database(env.database_url)
    try:
        async with db.engine.begin() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await db.dispose()


async def test_a_key_rotation_moves_teams_slack_webhooks_under_the_new_key_at_start(env: Env) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    slack = Slack()
    async with running(env.settings(webhook_encryption_keys=old)) as svc:
        rep_id = await rep_with_channels(svc, "slack")
        team_id = (await svc.get(f"/v1/admin/reps/{rep_id}")).json()["team_id"]
        put = await svc.client.put(f"/v1/admin/teams/{team_id}/slack-webhook", headers=ADMIN, json={"url": slack.url})
        assert put.status_code == 200

    async def stored() -> str:
        db = Database(env.database_url)
        try:
            async with db.transaction() as session:
                found: str = (await session.execute(
                    text("SELECT url_ciphertext FROM team_slack_webhook WHERE team_id = :t"), {"t": team_id},
                )).scalar_one()
        finally:
            await db.dispose()
        return found

    assert Fernet(old.encode()).decrypt(await stored()).decode() == slack.url
    async with running(env.settings(webhook_encryption_keys=f"{new},{old}")) as svc:
        async def under_new_key() -> bool:
            with contextlib.suppress(InvalidToken):
                return Fernet(new.encode()).decrypt(await stored()).decode() == slack.url
            return False

        await eventually(under_new_key, what="the Slack URL re-encrypted under the new key")
        shown = (await svc.get(f"/v1/admin/teams/{team_id}/slack-webhook")).json()
        assert shown["configured"] and shown["host"] == "127.0.0.1"


async def test_sent_notifications_go_after_their_retention_and_pending_ones_stay(env: Env) -> None:
    from leadflow_kit.retention import sweep_rule

    settings = env.settings(notify_sent_retention_days=1)
    [rule] = settings.retention_rules()
    now = datetime.now(UTC)
    db = Database(env.database_url)
    try:
        async with db.transaction() as session:
            for notification_id, status, sent_at in (("ntf_old", "sent", now - timedelta(days=2)),
                                                     ("ntf_new", "sent", now), ("ntf_wait", "pending", None)):
                await session.execute(text(
                    "INSERT INTO rep_notification (id, cause_event_id, kind, channel, rep_id, lead_id, content, "
                    "status, next_attempt_at, created_at, sent_at) VALUES (:id, :id, 'assigned', 'email', 'rep', "
                    "'lead-retention', '{}', :status, :now, :now, :sent_at)"),
                    {"id": notification_id, "status": status, "now": now - timedelta(days=3), "sent_at": sent_at})
        assert await sweep_rule(db, rule, now, batch_size=10) == 1
        async with db.transaction() as session:
            left = (await session.execute(text(
                "SELECT id FROM rep_notification WHERE lead_id = 'lead-retention' ORDER BY id"))).scalars().all()
    finally:
        await db.dispose()
    assert left == ["ntf_new", "ntf_wait"]
