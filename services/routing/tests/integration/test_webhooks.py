"""CRM webhooks against a local receiver that verifies each signature with ``standardwebhooks``:
failures, throttling, an endpoint that goes away across a routing restart, 410, dead letter and
replay, secret rotation. Every retry of one message carries the same webhook-id."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from routing_harness import (
    PLACEHOLDER,
    Env,
    Receiver,
    collecting,
    deliveries,
    produce,
    receiver,
    running,
    scored,
    subscribe,
)
from starlette.responses import Response

from leadflow_contracts import topics
from leadflow_stack.testing import eventually

pytestmark = pytest.mark.integration

async def test_failing_receiver_gets_every_retry_with_the_same_webhook_id(fresh: Env) -> None:
    def fail_three_times(webhook_id: str, seen: int) -> Response | None:
        return Response(status_code=500) if seen <= 3 else None

    async with (
        receiver(PLACEHOLDER, fail_three_times) as crm,
        collecting(fresh.infra.bootstrap_servers, fresh.topic(topics.DELIVERED)) as delivered,
        running(fresh.settings()) as svc,
    ):
        await subscribe(svc, crm)
        leads = [scored() for _ in range(3)]
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, leads)
        await delivered.wait(lambda: len(delivered.events) >= 3, what="three lead.delivered")

        assert crm.rejected == 0
        assert crm.accepted_lead_ids() == {lead.subject for lead in leads}
        by_id: dict[str, list[int]] = {}
        for attempt in crm.attempts:
            by_id.setdefault(attempt["webhook_id"], []).append(attempt["status"])
        assert len(by_id) == 3
        assert all(statuses == [500, 500, 500, 204] for statuses in by_id.values())
        assert {e.data.status for e in delivered.events} == {"delivered"}
        assert {e.data.attempt for e in delivered.events} == {4}
        assert {e.data.webhook_id for e in delivered.events} == set(by_id)

        log = await svc.get(f"/v1/admin/webhooks/deliveries/{next(iter(by_id))}")
        detail = log.json()
        assert detail["status"] == "delivered" and detail["attempts"] == 4
        assert [a["outcome"] for a in detail["attempt_log"]] == ["failed", "failed", "failed", "delivered"]
        assert detail["payload"]["type"] == "lead.routed"
        metrics = (await svc.client.get("/metrics")).text
        assert 'leadflow_webhook_deliveries_total{outcome="failed",service="routing"} 9.0' in metrics
        assert 'leadflow_webhook_deliveries_total{outcome="delivered",service="routing"} 3.0' in metrics
        assert "leadflow_webhook_delivery_duration_seconds_count" in metrics


async def test_429_and_503_with_retry_after_are_honoured(fresh: Env) -> None:
    def throttle(webhook_id: str, seen: int) -> Response | None:
        if seen == 1:
            return Response(status_code=429, headers={"Retry-After": "1"})
        if seen == 2:
            return Response(status_code=503, headers={"Retry-After": "1"})
        return None

    async with receiver(PLACEHOLDER, throttle) as crm, running(fresh.settings()) as svc:
        await subscribe(svc, crm)
        lead = scored()
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [lead])

        async def delivered() -> bool:
            return lead.subject in crm.accepted_lead_ids()

        await eventually(delivered)
        times = [a["at"] for a in crm.attempts]
        assert [a["status"] for a in crm.attempts] == [429, 503, 204]
        assert len({a["webhook_id"] for a in crm.attempts}) == 1
        # The schedule alone would retry after ~0.05 s and ~0.1 s; Retry-After said 1 s each time.
        assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 0.9


async def test_receiver_away_across_a_routing_restart_still_gets_every_lead(fresh: Env) -> None:
    # A long enough schedule that nothing goes dead while the receiver is away.
    settings = fresh.settings(webhook_retry_base_seconds=0.2)
    crm = Receiver(PLACEHOLDER)
    await crm.start()
    leads = [scored() for _ in range(5)]
    try:
        async with running(settings) as svc:
            await subscribe(svc, crm)
            await crm.stop()  # the CRM goes away
            await produce(fresh.infra.bootstrap_servers, fresh.prefix, leads)

            async def all_failed_at_least_once() -> bool:
                rows = await deliveries(svc)
                return len(rows) == 5 and all(r["attempts"] >= 1 and r["status"] == "pending" for r in rows)

            await eventually(all_failed_at_least_once)
            pending = {r["webhook_id"] for r in await deliveries(svc)}
        # Routing stopped with deliveries still owed; the CRM comes back, then routing restarts.
        await crm.start()
        async with running(settings) as svc:

            async def all_delivered() -> bool:
                rows = await deliveries(svc, status="delivered")
                return len(rows) == 5

            await eventually(all_delivered, timeout=60)
            rows = await deliveries(svc)
    finally:
        await crm.stop()
    assert crm.rejected == 0
    assert crm.accepted_lead_ids() == {lead.subject for lead in leads}
    assert {a["webhook_id"] for a in crm.attempts} == pending
    assert all(r["attempts"] >= 2 for r in rows)


async def test_410_holds_every_undelivered_lead_until_re_enabled_then_delivers_them(fresh: Env) -> None:
    gone = True

    def policy(webhook_id: str, seen: int) -> Response | None:
        return Response(status_code=410) if gone else None

    async with (
        receiver(PLACEHOLDER, policy) as crm,
        collecting(fresh.infra.bootstrap_servers, fresh.topic(topics.DELIVERED)) as delivered,
        running(fresh.settings()) as svc,
    ):
        subscription_id = await subscribe(svc, crm)
        first, second = scored(), scored()
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [first])

        async def first_held() -> list[dict[str, Any]]:
            return await deliveries(svc, status="held")

        held = await eventually(first_held)
        assert [r["lead_id"] for r in held] == [first.subject] and held[0]["last_status_code"] == 410
        subscription = (await svc.get(f"/v1/admin/webhooks/subscriptions/{subscription_id}")).json()
        assert subscription["active"] is False and "410" in subscription["disabled_reason"]

        # While disabled, new leads are queued as held: nothing is sent, nothing is dropped.
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [second])

        async def both_held() -> bool:
            return {r["lead_id"] for r in await deliveries(svc, status="held")} == {first.subject, second.subject}

        await eventually(both_held)
        await asyncio.sleep(0.5)
        assert len(crm.attempts) == 1 and not delivered.events

        gone = False
        enabled = await svc.patch(f"/v1/admin/webhooks/subscriptions/{subscription_id}", json={"active": True})
        assert enabled.json()["active"] is True and enabled.json()["disabled_reason"] is None
        await delivered.wait(lambda: len(delivered.events) >= 2, what="both held leads delivered")
        assert crm.accepted_lead_ids() == {first.subject, second.subject}
        assert {e.data.status for e in delivered.events} == {"delivered"}
        assert await deliveries(svc, status="held") == []


async def test_dead_letter_after_the_last_attempt_then_replay_with_the_same_id(fresh: Env) -> None:
    broken = True

    def policy(webhook_id: str, seen: int) -> Response | None:
        return Response(status_code=500) if broken else None

    settings = fresh.settings(webhook_retry_schedule_seconds=[0.05, 0.05, 0.05])
    async with (
        receiver(PLACEHOLDER, policy) as crm,
        collecting(fresh.infra.bootstrap_servers, fresh.topic(topics.DELIVERED)) as delivered,
        running(settings) as svc,
    ):
        subscription_id = await subscribe(svc, crm)
        lead = scored()
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [lead])
        await delivered.wait(lambda: bool(delivered.of(lead.subject)), what="dead lead.delivered")
        dead = delivered.of(lead.subject)[0].data
        assert dead.status == "dead" and dead.attempt == 4
        assert [r["webhook_id"] for r in await deliveries(svc, status="dead")] == [dead.webhook_id]

        broken = False
        replay = await svc.post(f"/v1/admin/webhooks/deliveries/{dead.webhook_id}/replay")
        assert replay.status_code == 202 and replay.json()["status"] == "pending"
        await delivered.wait(lambda: len(delivered.of(lead.subject)) == 2, what="delivered after replay")
        again = delivered.of(lead.subject)[1].data
        assert again.status == "delivered" and again.webhook_id == dead.webhook_id
        assert {a["webhook_id"] for a in crm.attempts} == {dead.webhook_id}
        assert len(crm.attempts) == 5

        bulk = await svc.post(f"/v1/admin/webhooks/subscriptions/{subscription_id}/replay",
                              json={"statuses": ["delivered"]})
        assert bulk.json() == {"replayed": 1}
        await eventually(_attempts_reach(crm, 6))


def _attempts_reach(crm: Receiver, count: int) -> Any:
    async def reached() -> bool:
        return len(crm.attempts) >= count

    return reached


async def test_secret_rotation_signs_with_both_secrets_during_the_overlap(fresh: Env) -> None:
    async with receiver(PLACEHOLDER) as crm, running(fresh.settings()) as svc:
        subscription_id = await subscribe(svc, crm)
        old_secret = crm.secret
        rotated = await svc.post(f"/v1/admin/webhooks/subscriptions/{subscription_id}/rotate-secret",
                                 json={"overlap_seconds": 3600})
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != old_secret
        lead = scored()
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [lead])  # receiver still has the old secret
        await eventually(_attempts_reach(crm, 1))
        assert crm.rejected == 0 and len(crm.attempts[0]["signature"].split(" ")) == 2

        crm.secret = new_secret  # the receiver moves to the new secret, then the admin rotates with no overlap
        third = await svc.post(f"/v1/admin/webhooks/subscriptions/{subscription_id}/rotate-secret",
                               json={"overlap_seconds": 0})
        newest = third.json()["secret"]
        late = scored()
        await produce(fresh.infra.bootstrap_servers, fresh.prefix, [late])

        async def rejected() -> bool:
            return crm.rejected >= 1

        await eventually(rejected)  # new_secret no longer signs
        crm.secret = newest

        async def late_delivered() -> bool:
            return late.subject in crm.accepted_lead_ids()

        await eventually(late_delivered)
        final = next(a for a in crm.attempts if a["payload"]["data"]["lead_id"] == late.subject)
        assert len(final["signature"].split(" ")) == 1


async def test_a_hanging_receiver_times_out_and_is_retried(fresh: Env) -> None:
    hang = asyncio.Event()
    settings = fresh.settings(webhook_timeout_seconds=0.5)

    class Hanging(Receiver):
        async def receive(self, request: Any) -> Response:
            if not hang.is_set():
                hang.set()
                await asyncio.sleep(2)
            return await super().receive(request)

    crm = Hanging(PLACEHOLDER)
    await crm.start()
    try:
        async with running(settings) as svc:
            await subscribe(svc, crm)
            lead = scored()
            await produce(fresh.infra.bootstrap_servers, fresh.prefix, [lead])

            async def delivered() -> list[dict[str, Any]]:
                return await deliveries(svc, status="delivered")

            rows = await eventually(delivered)
            detail = (await svc.get(f"/v1/admin/webhooks/deliveries/{rows[0]['webhook_id']}")).json()
            assert "Timeout" in detail["attempt_log"][0]["error"]
            assert detail["attempt_log"][-1]["outcome"] == "delivered"
    finally:
        await crm.stop()
