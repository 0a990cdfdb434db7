"""A CRM that goes away costs minutes, not hours, and one slow CRM holds back only itself: routing's
dispatcher against local receivers that stop, come back and dawdle."""

from __future__ import annotations

import asyncio
import time

import pytest
from routing_harness import PLACEHOLDER, Env, Receiver, deliveries, produce, running, scored, subscribe
from starlette.requests import Request
from starlette.responses import Response

from leadflow_stack.testing import eventually

pytestmark = pytest.mark.integration


async def test_a_receiver_back_from_an_outage_gets_its_backlog_at_once(fresh: Env) -> None:
    # A real-shaped schedule: after two quick failures the next retry is half a minute away.
    settings = fresh.settings(webhook_retry_base_seconds=None, webhook_retry_schedule_seconds=[1, 30, 60, 60],
                              webhook_jitter_ratio=0)
    crm = Receiver(PLACEHOLDER)
    await crm.start()
    backlog = [scored() for _ in range(5)]
    try:
        async with running(settings) as svc:
            await subscribe(svc, crm)
            await crm.stop()
            await produce(fresh.infra.bootstrap_servers, fresh.prefix, backlog)

            async def all_failed_twice() -> bool:
                rows = await deliveries(svc)
                return len(rows) == 5 and all(r["attempts"] == 2 and r["status"] == "pending" for r in rows)

            await eventually(all_failed_twice, timeout=30)
            await crm.start()
            fresh_lead = scored()
            await produce(fresh.infra.bootstrap_servers, fresh.prefix, [fresh_lead])

            async def everything_delivered() -> bool:
                return len(await deliveries(svc, status="delivered")) == 6

            # Well before the 30 s retry each backlog row was scheduled for.
            await eventually(everything_delivered, timeout=20, what="the backlog delivered after the receiver's return")
    finally:
        await crm.stop()
    assert crm.accepted_lead_ids() == {lead.subject for lead in [*backlog, fresh_lead]}
    back_at = next(a["at"] for a in crm.accepted() if a["payload"]["data"]["lead_id"] == fresh_lead.subject)
    # The first success woke the others: they followed within moments, not at their own retry times.
    assert max(a["at"] for a in crm.accepted()) - back_at < 5


class SlowReceiver(Receiver):
    """Takes ``delay`` seconds over every request and counts how many it holds at once."""

    delay: float = 1.5
    now_open: int = 0
    most_open: int = 0

    async def receive(self, request: Request) -> Response:
        self.now_open += 1
        self.most_open = max(self.most_open, self.now_open)
        try:
            await asyncio.sleep(self.delay)
            return await super().receive(request)
        finally:
            self.now_open -= 1


async def test_a_slow_receiver_does_not_hold_back_another_subscription(fresh: Env) -> None:
    settings = fresh.settings(webhook_timeout_seconds=10, webhook_subscription_concurrency=2)
    slow, quick = SlowReceiver(PLACEHOLDER), Receiver(PLACEHOLDER)
    await slow.start()
    await quick.start()
    leads = [scored() for _ in range(6)]
    try:
        async with running(settings) as svc:
            await subscribe(svc, slow)
            await subscribe(svc, quick)
            started = time.monotonic()
            await produce(fresh.infra.bootstrap_servers, fresh.prefix, leads)

            async def quick_has_all() -> bool:
                return len(quick.accepted()) == 6

            await eventually(quick_has_all, timeout=20)
            quick_done = time.monotonic() - started
            slow_so_far = len(slow.accepted())

            async def slow_has_all() -> bool:
                return len(slow.accepted()) == 6

            # Two at a time, 1.5 s each: about 4.5 s for the slow one.
            await eventually(slow_has_all, timeout=30)
            slow_done = time.monotonic() - started
    finally:
        await slow.stop()
        await quick.stop()
    assert slow_so_far < 6 and quick_done < slow_done
    assert slow.most_open == 2  # its share in flight, never more
    assert quick.accepted_lead_ids() == slow.accepted_lead_ids() == {lead.subject for lead in leads}

