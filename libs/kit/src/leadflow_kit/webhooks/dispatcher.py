"""``WebhookDispatcher``: sends the deliveries handed to it by the transactions that queued them, claims
the other due ones, signs and POSTs them, and records each outcome (retrying on the policy's schedule);
``webhook_dispatcher`` runs one beside a service's routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg

from leadflow_contracts import Event, LeadDelivered, new_event
from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import Database
from leadflow_kit.egress import guarded_session
from leadflow_kit.failures import is_infrastructure_error
from leadflow_kit.outbox import Outbox
from leadflow_kit.platform import Background, Platform
from leadflow_kit.pressure import cpu_shortage
from leadflow_kit.secretbox import SecretBox
from leadflow_kit.webhooks.metrics import WebhookMetrics
from leadflow_kit.webhooks.policy import AttemptOutcome, NextStep, next_step, parse_retry_after
from leadflow_kit.webhooks.settings import WebhookSettings, webhook_settings
from leadflow_kit.webhooks.signing import active_secrets, signed_headers
from leadflow_kit.webhooks.store import (
    DispatcherRoom,
    DueDelivery,
    FinishedAttempt,
    QueuedForHandOff,
    WebhookStore,
    listen_for_wakeups,
    webhook_transaction,
)

log = logging.getLogger(__name__)

# How much of a failed response's body the delivery log keeps: enough to debug, too little to be a
# channel for reading back what a receiver answered.
FAILURE_BODY_BYTES = 1024
# Any answer's body is read up to this much (the rest of a failure's dropped) so its connection is kept
# alive for the next send: a longer one closes it, and the next send pays a new connection (a DNS
# lookup, the egress check, a TLS handshake).
DRAINED_BODY_BYTES = 65536


@dataclass(frozen=True)
class _Claimed:
    due: DueDelivery
    # None when no configured encryption key opens the subscription's secret: nothing is sent.
    secrets: list[str] | None


@dataclass(frozen=True)
class _Attempt:
    row: _Claimed
    outcome: AttemptOutcome
    step: NextStep
    elapsed: float
    at: datetime

    @property
    def number(self) -> int:
        return self.row.due.attempts + 1


def _clip(text: str, limit: int = FAILURE_BODY_BYTES) -> str:
    return text.encode()[:limit].decode(errors="ignore")


async def _read_prefix(body: aiohttp.StreamReader, limit: int) -> bytes:
    """At most ``limit`` bytes of the body: a receiver cannot make us buffer more."""
    data = bytearray()
    while len(data) <= limit:
        chunk = await body.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data[:limit])


class WebhookDispatcher:
    """Sends due deliveries; any number of replicas may run (rows are claimed or handed over, not shared).

    Each row is sent by its own task and recorded by the next round after it ends (while the CPU is
    short, by the round ``webhook_record_linger_ms`` after the first of them ended, with those that ended
    meanwhile); a subscription has at most ``webhook_subscription_concurrency`` sends in flight, all of
    them at most ``webhook_concurrency``.

    A transaction of this process that queues webhooks (``enqueue_webhooks`` with a ``WebhookHandOff``)
    hands over, at commit, the rows it leased to this dispatcher: they are sent at once, within the room
    left then (sends started since the transaction looked, by a claim or another transaction's hand-over,
    may have taken some: those are given back, for a claim within the room). A claim runs only
    when something may wait for one: a NOTIFY (rows queued elsewhere, a replay, a release), rows queued
    here that were not handed over, a recorded outcome after which a row of its subscription is due and
    not leased, a send ending while every slot was taken, and the poll interval (leases run out, retries
    fall due).
    """

    def __init__(
        self,
        settings: WebhookSettings,
        db: Database,
        http: aiohttp.ClientSession,
        metrics: WebhookMetrics,
        outbox: Outbox | None = None,
        clock: Clock | None = None,
        box: SecretBox | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.http = http
        self.metrics = metrics
        self.outbox = outbox or Outbox(settings.topic_prefix)
        self.clock = clock or SystemClock()
        self.box = box or settings.secret_box()
        self.service = settings.service_name
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running = False
        self._in_flight: dict[str, int] = {}
        # Rows this dispatcher is sending or has yet to record: never claimed again meanwhile, even if
        # the clock passes their lease (an injected clock can jump).
        self._sending_ids: set[int] = set()
        self._sending: set[asyncio.Task[None]] = set()
        self._finished: list[_Attempt] = []
        # The loop's time the oldest of them ended (None while there is none).
        self._finished_since: float | None = None
        self._cpu_is_short = cpu_shortage(settings.consumer_linger_cpu_pressure,
                                          enabled=settings.webhook_record_linger_ms > 0)
        # Rows leased to this dispatcher that it will not send: handed over while it stopped, or their
        # send cut off at the stop. Released at the end of run().
        self._unsent: list[DueDelivery] = []
        # Rows handed over past their subscription's share (or past the concurrency): released by the next
        # round, for a claim once there is room.
        self._over_room: list[DueDelivery] = []
        # Whether the next round claims (else it only records, until the poll's time comes).
        self._claim_wanted = True
        # The last claim took every free slot: a send that ends may leave room for a row still due.
        self._claim_when_room = False
        # ciphertext -> secret: each stored secret is decrypted once, not per delivery.
        self._plaintext: dict[str, str] = {}

    @property
    def lease(self) -> timedelta:
        # A claimed row is hidden this long; if this process dies mid-send, it becomes due again.
        return timedelta(seconds=self.settings.webhook_timeout_seconds + 30)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Claim what is due now (rows were queued, replayed or released)."""
        self._claim_wanted = True
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._running and not self._stopping.is_set()

    def room(self) -> DispatcherRoom | None:
        """How many more sends it takes on now, for a transaction that queues webhooks; None when stopped."""
        if not self.running:
            return None
        return DispatcherRoom(
            free=max(self.settings.webhook_concurrency - len(self._sending), 0),
            share=self.settings.webhook_subscription_concurrency, in_flight=dict(self._in_flight),
            lease_until=self.clock.now() + self.lease,
        )

    def hand_over(self, queued: QueuedForHandOff) -> None:
        """Send the committed rows leased to this dispatcher at once (after a commit, on the committer's
        task); claim soon when others were queued for a claim. Stopping, it gives them back as it ends
        (after that, their lease runs out and they are claimed again)."""
        if not self.running:
            self._unsent.extend(queued.handed)
            return
        now = self.clock.now()
        for due in queued.handed:
            # The transaction saw the room before it committed; sends started meanwhile (a claim, another
            # transaction's hand-over) may have taken it. A send is started only within the room.
            if self._has_room_for(due.subscription_id):
                self._start(_Claimed(due, self._signing_secrets(due, now)))
            else:
                self._over_room.append(due)
        if queued.claimable or self._over_room:
            self.wake()

    def _has_room_for(self, subscription_id: str) -> bool:
        return (len(self._sending) < self.settings.webhook_concurrency
                and self._in_flight.get(subscription_id, 0) < self.settings.webhook_subscription_concurrency)

    async def run(self) -> None:
        listener = await self._listen()
        self._running = True
        # The loop's time of the next claim whatever else happens (the poll, or the next row's due time).
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                # Cleared before the round: a NOTIFY or a finished send during the round wakes the next one at once.
                self._wake.clear()
                try:
                    await self._record_finished()
                    await self._release_over_room()
                    if self._claim_wanted or loop.time() >= next_claim:
                        self._claim_wanted = False
                        if await self._start_due():
                            self._claim_wanted = True
                            continue
                        next_claim = loop.time() + await self._idle_wait()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # An outage is one line a round; anything else deserves its stack trace.
                    log.warning("webhook dispatch round failed (%s: %s); retrying", type(exc).__name__, exc,
                                exc_info=not is_infrastructure_error(exc))
                    self._claim_wanted = True
                    await self._sleep(1.0)
                    continue
                if self._wake.is_set():
                    continue
                wait = next_claim - loop.time()
                if self._finished:
                    wait = min(wait, self._record_wait())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(wait, 0.0))
                if listener is None or listener.is_closed():
                    # Lost with a database restart: listen again, or wake-ups would wait for the poll.
                    listener = await self._listen()
        finally:
            self._running = False
            await self._wind_down()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def _wind_down(self) -> None:
        """At a stop (a cancel included): sends in flight get ``webhook_stop_grace_seconds`` to end and
        are recorded; those cut off, and rows handed over meanwhile, are released for any dispatcher."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=self.settings.webhook_stop_grace_seconds)
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._record_finished(at_once=True)
        unsent, self._unsent = [*self._unsent, *self._over_room], []
        self._over_room = []
        if not unsent:
            return
        try:
            async with webhook_transaction(self.db) as store:
                released = await store.release([(due.id, due.attempts) for due in unsent], self.clock.now())
            log.info("released %d unsent webhook(s) at stop; any dispatcher sends them now", released)
        except Exception as exc:
            log.warning("could not release %d unsent webhook(s) at stop (%s: %s); their lease runs out in %d s",
                        len(unsent), type(exc).__name__, exc, self.lease.total_seconds())

    async def _release_over_room(self) -> None:
        """Give back the rows handed over past the room (due at once; a claim takes them within it)."""
        if not self._over_room:
            return
        rows, self._over_room = self._over_room, []
        try:
            async with webhook_transaction(self.db) as store:
                await store.release([(due.id, due.attempts) for due in rows], self.clock.now())
        except BaseException:
            self._over_room[:0] = rows  # the next round tries again; meanwhile their lease holds them
            raise
        self._claim_wanted = True

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            return await listen_for_wakeups(self.db, self.wake)
        except Exception as exc:
            log.warning("webhook dispatcher cannot LISTEN (%s: %s); polling until it can", type(exc).__name__, exc)
            return None

    async def _idle_wait(self) -> float:
        """Sleep until the next due row (bounded by the poll interval)."""
        poll = self.settings.webhook_poll_interval_seconds
        try:
            async with webhook_transaction(self.db) as store:
                due = await store.next_due_at()
        except Exception:
            return poll
        if due is None:
            return poll
        wait = (due - self.clock.now()).total_seconds()
        # A row already due that the last claim left is waiting for a send in flight (its
        # subscription's share, or an earlier delivery of its lead): that send's end wakes us.
        return poll if wait <= 0 else min(wait, poll)

    async def _start_due(self) -> bool:
        """Claim what is due and free to go, each row sent by its own task; True when the claim was
        cut short by the batch size (more may be due at once)."""
        free = self.settings.webhook_concurrency - len(self._sending)
        limit = min(free, self.settings.webhook_batch_size)
        if limit <= 0:
            self._claim_when_room = True
            return False
        claimed = await self._claim(limit)
        for row in claimed:
            # The claim counted the sends in flight as it began; a transaction's hand-over at its commit
            # may have started others of the same subscription while the claim ran. Past the room, a row
            # is given back by the next round, for a claim once there is room.
            if self._has_room_for(row.due.subscription_id):
                self._start(row)
            else:
                self._over_room.append(row.due)
        self._claim_when_room = len(claimed) >= free or bool(self._over_room)
        return len(claimed) >= limit and limit < free

    def _start(self, row: _Claimed) -> None:
        due = row.due
        self._in_flight[due.subscription_id] = self._in_flight.get(due.subscription_id, 0) + 1
        self._sending_ids.add(due.id)
        task = asyncio.create_task(self._deliver(row), name=f"webhook-{due.webhook_id}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, row: _Claimed) -> None:
        due = row.due
        try:
            # Not `self._finished.append(await ...)`: that would take the list before the await, and
            # the loop swaps it for a fresh one while sends are in flight.
            attempt = await self._attempt(row)
            if not self._finished:
                self._finished_since = asyncio.get_running_loop().time()
            self._finished.append(attempt)
        except asyncio.CancelledError:
            self._sending_ids.discard(due.id)
            self._unsent.append(due)  # cut off at the stop: given back as run() ends
            raise
        except Exception:
            # The lease runs out and the row is sent again with the same webhook-id.
            self._sending_ids.discard(due.id)
            log.exception("sending webhook %s failed unexpectedly", due.webhook_id)
        finally:
            left = self._in_flight.get(due.subscription_id, 1) - 1
            if left > 0:
                self._in_flight[due.subscription_id] = left
            else:
                self._in_flight.pop(due.subscription_id, None)
            if self._claim_when_room:
                self._claim_wanted = True
            self._wake.set()

    async def _record_finished(self, *, at_once: bool = False) -> None:
        if not self._finished or (not at_once and self._record_wait() > 0):
            return
        finished, since = self._finished, self._finished_since
        self._finished, self._finished_since = [], None
        try:
            await self._record_all(finished)
        except BaseException:
            # A stop cancelled the write: the wind-down records these, or their lease would run out and they
            # would be sent again. Writing twice is safe (each write is checked against the attempts made).
            self._finished[:0] = finished
            self._finished_since = since
            raise
        self._sending_ids.difference_update(a.row.due.id for a in finished)

    def _record_wait(self) -> float:
        """Seconds the sends that ended may still wait to be recorded together: none unless the CPU is
        short, and none once ``webhook_batch_size`` have ended or the dispatcher stops."""
        if (self._finished_since is None or len(self._finished) >= self.settings.webhook_batch_size
                or self._stopping.is_set() or not self._cpu_is_short()):
            return 0.0
        linger = self.settings.webhook_record_linger_ms / 1000
        return max(self._finished_since + linger - asyncio.get_running_loop().time(), 0.0)

    async def _claim(self, limit: int) -> list[_Claimed]:
        now = self.clock.now()
        async with webhook_transaction(self.db) as store:
            claimed = await store.claim_due(now, limit=limit, share=self.settings.webhook_subscription_concurrency,
                                            in_flight=self._in_flight, skip_ids=list(self._sending_ids),
                                            lease_until=now + self.lease)
        return [_Claimed(r, self._signing_secrets(r, now)) for r in claimed]

    def _signing_secrets(self, r: DueDelivery, now: datetime) -> list[str] | None:
        try:
            current = self._decrypt(r.secret_ciphertext)
            previous = r.previous_secret_ciphertext
            return active_secrets(current, None if previous is None else self._decrypt(previous),
                                  r.previous_secret_expires_at, now)
        except ValueError:
            log.error("no configured encryption key opens the signing secret of webhook subscription %s",
                      r.subscription_id)
            return None

    def _decrypt(self, ciphertext: str) -> str:
        plaintext = self._plaintext.get(ciphertext)
        if plaintext is None:
            plaintext = self.box.decrypt(ciphertext)
            if len(self._plaintext) >= 10_000:
                self._plaintext.clear()
            self._plaintext[ciphertext] = plaintext
        return plaintext

    async def _send(self, row: _Claimed) -> tuple[AttemptOutcome, float]:
        due = row.due
        if row.secrets is None:
            return AttemptOutcome(None, "not sent: no configured encryption key opens the signing secret"), 0.0
        # The signature's timestamp is the wall clock even under an injected clock: receivers reject
        # timestamps more than five minutes from their own time.
        headers = signed_headers(row.secrets, due.webhook_id, datetime.now(UTC), due.payload)
        timeout = self.settings.webhook_timeout_seconds
        started = time.perf_counter()
        try:
            # One deadline for the whole exchange: a receiver that drips its answer cannot hold a slot.
            async with (
                asyncio.timeout(timeout),
                self.http.post(due.url, data=due.payload.encode(), headers=headers,
                               allow_redirects=False) as response,
            ):
                ok = 200 <= response.status < 300
                body = await _read_prefix(response.content, DRAINED_BODY_BYTES)
        except TimeoutError:
            return (AttemptOutcome(None, f"TimeoutError: no complete answer within {timeout:g} s"),
                    time.perf_counter() - started)
        except Exception as exc:
            return AttemptOutcome(None, _clip(f"{type(exc).__name__}: {exc}")), time.perf_counter() - started
        elapsed = time.perf_counter() - started
        kept = body[:FAILURE_BODY_BYTES].decode(errors="replace")
        error = None if ok else f"HTTP {response.status}: {_clip(kept)}"
        retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.now())
        return AttemptOutcome(response.status, error, retry_after), elapsed

    async def _attempt(self, row: _Claimed) -> _Attempt:
        outcome, elapsed = await self._send(row)
        self.metrics.duration.labels(self.service).observe(elapsed)
        now = self.clock.now()
        step = next_step(
            outcome, row.due.attempts + 1, now, self.settings.webhook_retry_schedule(),
            jitter_ratio=self.settings.webhook_jitter_ratio,
            max_retry_after=self.settings.webhook_max_retry_after_seconds,
        )
        return _Attempt(row, outcome, step, elapsed, now)

    async def _record_all(self, attempts: Sequence[_Attempt]) -> None:
        """Record finished attempts in one transaction (one commit for all), or one by one if that
        fails, so one bad row cannot make the others be sent again. While the database is
        unreachable the outcomes wait for it: a delivery already made must not be made again."""
        try:
            recorded = await self._record_through_outages(attempts)
        except Exception:
            if len(attempts) == 1:
                # The lease expires and the row is sent again with the same webhook-id.
                log.exception("could not record webhook outcome for %s", attempts[0].row.due.webhook_id)
                return
            log.warning("recording %d webhook outcomes together failed; recording them one by one",
                        len(attempts), exc_info=True)
            for attempt in attempts:
                await self._record_all([attempt])
            return
        for attempt, was_recorded in zip(attempts, recorded, strict=True):
            if was_recorded:
                self._report(attempt)

    async def _record_through_outages(self, attempts: Sequence[_Attempt]) -> list[bool]:
        backoff = 0.2
        while True:
            try:
                async with webhook_transaction(self.db) as store:
                    recorded = await self._record(store, attempts)
                self.metrics.recordings.labels(self.service).inc()
                return recorded
            except Exception as exc:
                if not is_infrastructure_error(exc) or self._stopping.is_set():
                    raise
                log.warning("recording %d webhook outcomes waits on the database (%s: %s); retrying in %.1fs",
                            len(attempts), type(exc).__name__, exc, backoff)
                await self._sleep(backoff + random.uniform(0, backoff))
                backoff = min(backoff * 2, 5.0)

    def _report(self, attempt: _Attempt) -> None:
        due, step, outcome = attempt.row.due, attempt.step, attempt.outcome
        self.metrics.deliveries.labels(self.service, step.label).inc()
        if step.status == "dead":
            log.error("webhook %s to subscription %s is dead after %d attempts: %s",
                      due.webhook_id, due.subscription_id, attempt.number, outcome.error)
        elif step.status == "pending":
            log.info("webhook %s attempt %d failed (%s); next at %s",
                     due.webhook_id, attempt.number, outcome.error, step.next_attempt_at)

    async def _record(self, store: WebhookStore, attempts: Sequence[_Attempt]) -> list[bool]:
        """Write the attempts' outcomes (one statement) and their lead.delivered events (one outbox
        statement at commit); for each attempt, False when someone else recorded its delivery meanwhile."""
        written = await store.record_attempts([
            FinishedAttempt(a.row.due.id, a.row.due.attempts, a.outcome, a.step, a.at, a.elapsed) for a in attempts
        ])
        if written.claimable:
            self._claim_wanted = True
        recorded = [a.row.due.id in written.delivery_ids for a in attempts]
        done = [a for a, was_recorded in zip(attempts, recorded, strict=True) if was_recorded]
        gone = {a.row.due.subscription_id: a.at for a in done if a.step.disable_subscription}
        for subscription_id, now in gone.items():
            await store.disable_subscription(subscription_id, "endpoint answered 410 Gone", now)
            log.warning("webhook subscription %s disabled: its endpoint answered 410 Gone; its deliveries are held "
                        "until it is enabled again", subscription_id)
        if self.settings.webhook_emit_delivered_events:
            for attempt in done:
                if attempt.step.status in ("delivered", "dead"):
                    await self.outbox.add(store.session, self._delivered_event(attempt))
        return recorded

    def _delivered_event(self, attempt: _Attempt) -> Event[LeadDelivered]:
        due, outcome, step, now = attempt.row.due, attempt.outcome, attempt.step, attempt.at
        data = LeadDelivered(
            lead_id=due.lead_id, webhook_id=due.webhook_id, subscription_id=due.subscription_id,
            event_type_delivered=due.event_type, status=step.status, attempt=attempt.number,
            status_code=outcome.status_code, error=outcome.error, at=now,
        )
        return new_event(data, source=self.service, subject=due.lead_id, correlation_id=due.correlation_id,
                         lead_captured_at=due.lead_captured_at, time=now)

    async def _sleep(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True


class WebhookHandOff:
    """This process's running dispatcher, for the transactions that queue webhooks (``enqueue_webhooks``):
    a service's deps hold one, ``webhook_dispatcher`` fills it while its dispatcher runs."""

    def __init__(self) -> None:
        self.dispatcher: WebhookDispatcher | None = None

    def room(self) -> DispatcherRoom | None:
        return self.dispatcher.room() if self.dispatcher is not None else None

    def hand_over(self, queued: QueuedForHandOff) -> None:
        if self.dispatcher is not None:
            self.dispatcher.hand_over(queued)


def webhook_dispatcher(platform: Platform, metrics: WebhookMetrics, hand_off: WebhookHandOff | None = None
                       ) -> Background:
    """The service's dispatcher, to run beside its routes. It sends through its own client, which checks
    every connection against the egress policy; with ``hand_off``, it takes the webhooks that this
    process's transactions queue straight from them."""
    settings = webhook_settings(platform)

    async def run() -> None:
        http = guarded_session(settings.egress_policy(), connections=settings.webhook_concurrency)
        dispatcher = WebhookDispatcher(settings, platform.pipeline_db, http, metrics, platform.outbox, platform.clock)
        if hand_off is not None:
            hand_off.dispatcher = dispatcher
        try:
            await dispatcher.run()
        finally:
            if hand_off is not None:
                hand_off.dispatcher = None
            dispatcher.stop()
            await http.close()

    return Background("webhook-dispatcher", run)
