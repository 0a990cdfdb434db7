"""The background sender: claims due notifications, sends each (Slack incoming webhook, SMTP), and
records the outcome, retrying failures on the kit's webhook retry policy until the schedule runs out.

A notification recorded ``sent`` is never claimed again. The one window left is a crash (or a lost
database) between a successful send and its record: the lease runs out and the message goes again.
An email's copy carries the same Message-ID (derived from the notification id), which mail clients
and Gmail use to fold it into the first; a Slack incoming webhook takes no idempotency key, so a
copy shows as a second message. The window is one send long."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import aiosmtplib
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.clock import Clock
from leadflow_kit.db import Database
from leadflow_kit.egress import guarded_session
from leadflow_kit.periodic import run_periodically
from leadflow_kit.platform import Background, Platform
from leadflow_kit.secretbox import SecretBox
from leadflow_kit.webhooks import AttemptOutcome, next_step, parse_retry_after
from leadflow_routing.notifications import messages
from leadflow_routing.notifications.settings import NotificationSettings
from leadflow_routing.notifications.store import ClaimedNotification, NotificationStore

log = logging.getLogger(__name__)


class NotificationMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.attempts = Counter(
            "leadflow_routing_notifications_total",
            "Notification attempts to reps, by channel and outcome (sent, failed: will retry, dead: gave up)",
            ["channel", "outcome"], registry=registry,
        )


class NotificationFailed(Exception):
    """An attempt that did not deliver; ``status_code`` is the Slack answer's, if any."""

    def __init__(self, message: str, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Outcome:
    claimed: ClaimedNotification
    error: NotificationFailed | None
    at: datetime


class NotificationSender:
    def __init__(self, settings: NotificationSettings, db: Database, clock: Clock, http: aiohttp.ClientSession,
                 metrics: NotificationMetrics, store: NotificationStore | None = None) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.http = http
        self.metrics = metrics
        self.store = store or NotificationStore()
        self.box = settings.secret_box()

    @property
    def lease(self) -> timedelta:
        # Longer than one send can take: a row is sent again only if its sender died.
        return timedelta(seconds=self.settings.notify_timeout_seconds * 2 + 30)

    async def send_due(self) -> int:
        """One round: claim what is due, send it all at once, record every outcome; how many were sent."""
        async with self.db.transaction() as session:
            claimed = await self.store.claim_due(session, self.clock.now(), self.lease,
                                                 self.settings.notify_batch_size)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._attempt(row) for row in claimed))
        async with self.db.transaction() as session:
            for outcome in outcomes:
                await self._record(session, outcome)
        return sum(1 for outcome in outcomes if outcome.error is None)

    async def _attempt(self, row: ClaimedNotification) -> Outcome:
        try:
            if row.channel == "slack":
                await self._send_slack(row)
            else:
                await self._send_email(row)
        except NotificationFailed as exc:
            return Outcome(row, exc, self.clock.now())
        except TimeoutError:
            return Outcome(row, NotificationFailed(
                f"TimeoutError: no answer within {self.settings.notify_timeout_seconds:g} s"), self.clock.now())
        except (aiosmtplib.SMTPException, aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(row, NotificationFailed(f"{type(exc).__name__}: {exc}"), self.clock.now())
        return Outcome(row, None, self.clock.now())

    async def _record(self, session: AsyncSession, outcome: Outcome) -> None:
        row, error = outcome.claimed, outcome.error
        if error is None:
            await self.store.record_sent(session, row.id, outcome.at)
            self.metrics.attempts.labels(row.channel, "sent").inc()
            return
        step = next_step(AttemptOutcome(error.status_code, str(error), error.retry_after), row.attempts + 1,
                         outcome.at, self.settings.notify_retry_schedule_seconds,
                         jitter_ratio=self.settings.notify_jitter_ratio)
        retry_at = step.next_attempt_at if step.status == "pending" else None
        await self.store.record_failed(session, row.id, error=str(error), retry_at=retry_at)
        label = "failed" if retry_at is not None else "dead"
        self.metrics.attempts.labels(row.channel, label).inc()
        log.warning("notification %s (%s to %s) %s: %s", row.id, row.channel, row.content.rep_id,
                    "will be retried" if retry_at else "gave up after its last retry", error)

    def _slack_url(self, row: ClaimedNotification) -> str:
        if row.team_slack_ciphertext is not None:
            return self.box.decrypt(row.team_slack_ciphertext)
        if self.settings.notify_slack_webhook_url is not None:
            return self.settings.notify_slack_webhook_url.get_secret_value()
        raise NotificationFailed(f"no Slack webhook for team {row.team_id or '(none)'} and no global one")

    async def _send_slack(self, row: ClaimedNotification) -> None:
        async with (
            asyncio.timeout(self.settings.notify_timeout_seconds),
            self.http.post(self._slack_url(row), json=messages.slack_message(row.content),
                           allow_redirects=False) as response,
        ):
            if 200 <= response.status < 300:
                return
            # At most 200 characters are kept; a receiver cannot make us buffer its whole answer.
            text = (await response.content.read(800)).decode(errors="replace")[:200]
            raise NotificationFailed(f"Slack answered {response.status}: {text}", response.status,
                                     parse_retry_after(response.headers.get("retry-after"), self.clock.now()))

    async def _send_email(self, row: ClaimedNotification) -> None:
        s = self.settings
        if not s.smtp_host:
            raise NotificationFailed("no SMTP host configured (ROUTING_SMTP_HOST)")
        message = messages.email_message(row.content, notification_id=row.id, sender=s.smtp_from,
                                         domain=s.smtp_message_id_domain, now=self.clock.now())
        await aiosmtplib.send(
            message, hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_security == "tls", start_tls=s.smtp_security == "starttls",
            timeout=s.notify_timeout_seconds,
        )


async def reencrypt_slack_webhooks(db: Database, box: SecretBox, store: NotificationStore | None = None) -> int:
    """Move every team's Slack URL under the box's first key (after a key rotation); how many changed."""
    store = store or NotificationStore()
    changed = 0
    async with db.transaction() as session:
        for team_id, ciphertext in await store.slack_ciphertexts_for_update(session):
            try:
                moved = box.reencrypt(ciphertext)
            except ValueError:
                # Left as it is (the others still move): its key must come back, or the URL be set again.
                log.warning("no configured encryption key opens team %s's Slack webhook URL; set it again",
                            team_id)
                continue
            if moved is not None:
                await store.set_slack_ciphertext(session, team_id, moved)
                changed += 1
    return changed


def notification_sender(platform: Platform, settings: NotificationSettings) -> Background:
    """The sender, run beside routing's routes; Slack is reached through the egress guard webhooks use.
    At start it moves teams' Slack URLs under the first encryption key, so a key rotation (a restart
    with a new key in front) leaves no URL under the old one."""
    metrics = NotificationMetrics(platform.metrics.registry)

    async def run() -> None:
        try:
            changed = await reencrypt_slack_webhooks(platform.db, settings.secret_box())
        except Exception as exc:  # the database may still be starting: the next start tries again
            log.warning("could not re-encrypt teams' Slack webhooks (%s: %s)", type(exc).__name__, exc)
        else:
            if changed:
                log.info("re-encrypted %d team Slack webhook URL(s) under the first key", changed)
        async with guarded_session(settings.egress_policy()) as http:
            sender = NotificationSender(settings, platform.db, platform.clock, http, metrics)
            await run_periodically("notification sender", settings.notify_poll_interval_seconds, sender.send_due)

    return Background("notification sender", run)
