"""The external firmographics provider: a hung one costs the timeout and no more, a failing one trips the
breaker and the breaker recovers; answers are cached. The provider is a real HTTP server on a free port."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from leadflow_contracts import LeadCaptured, LeadContact, new_event
from leadflow_enrichment.domain import email_key
from leadflow_enrichment.handlers import prefetch_firmographics
from leadflow_kit.app import app_deps
from leadflow_kit.db import asyncpg_dsn
from leadflow_stack.procs import free_port
from leadflow_stack.testing import bearer

from .conftest import enrichment_settings, fake_provider, running

pytestmark = pytest.mark.integration

ADMIN = bearer()


def unique_domain(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.com"


async def test_hung_provider_costs_the_timeout_and_the_lead_moves_on_partial(enrichment_env):
    timeout = 0.3
    async with fake_provider() as provider:
        provider.mode = "hang"
        # Three retries: a per-attempt timeout instead of one budget would cost 4 x 0.3 s.
        settings = enrichment_settings(enrichment_env, provider_url=provider.url, provider_timeout_seconds=timeout,
                                       provider_retries=3)
        async with running(settings) as service:
            started = time.monotonic()
            lead_id = await service.capture(email=f"ada@{unique_domain('slowco')}", company="Slow Co")
            event = await service.enriched(lead_id)
            waited = time.monotonic() - started
            data = event.data
            assert data.partial is True
            assert data.partial_reasons == ["provider_timeout"]
            assert "partial_enrichment" in data.quality.reasons
            read = (await service.client.get(f"/v1/leads/{lead_id}", headers=ADMIN)).json()
            print(f"\nhung provider: enrichment took {read['enrichment_ms']:.1f} ms with a {timeout * 1000:.0f} ms "
                  f"timeout; capture→enriched {waited * 1000:.0f} ms")
            # The budget plus the fill's own database work, which a loaded 2-core CI machine can slow down.
            assert timeout * 1000 <= read["enrichment_ms"] < (timeout + 0.5) * 1000
            assert read["partial_reasons"] == ["provider_timeout"]
            assert waited < timeout + 3
            metrics = (await service.client.get("/metrics")).text
            assert 'leadflow_enrichment_partial_total{reason="provider_timeout",service="enrichment"} 1.0' in metrics


async def test_failing_provider_trips_the_breaker_then_recovers(enrichment_env):
    async with fake_provider() as provider:
        provider.mode = "fail"
        settings = enrichment_settings(enrichment_env, provider_url=provider.url, provider_timeout_seconds=1.0,
                                       provider_retries=1, provider_retry_backoff_seconds=0.01,
                                       provider_breaker_failures=2, provider_breaker_reset_seconds=1.0,
                                       provider_auth_header="X-Provider-Key", provider_auth_value="s3cret")
        async with running(settings) as service:
            reasons = []
            for n in range(3):
                lead_id = await service.capture(email=f"grace@{unique_domain(f'down{n}')}")
                reasons.append((await service.enriched(lead_id)).data.partial_reasons)
            assert reasons == [["provider_error"], ["provider_error"], ["provider_circuit_open"]]
            # Two lookups, each tried twice (one retry); the open circuit asked nothing.
            assert provider.hits == 4
            assert set(provider.auth_seen) == {"s3cret"}

            provider.mode = "ok"
            await asyncio.sleep(1.05)
            domain = unique_domain("upagain")
            lead_id = await service.capture(email=f"linus@{domain}")
            data = (await service.enriched(lead_id)).data
            assert data.partial is False
            assert data.partial_reasons == []
            assert (data.profile.industry, data.profile.employee_count, data.profile.annual_revenue) == (
                "Software", 250, 30e6)
            assert data.profile.country == "CA"
            hits = provider.hits

            again = await service.capture(email=f"barbara@{domain}")
            assert (await service.enriched(again)).data.profile.industry == "Software"
            assert provider.hits == hits, "the second lead of a domain is answered from the cache"
            metrics = (await service.client.get("/metrics")).text
            for outcome, count in (("provider_error", 2), ("provider_circuit_open", 1), ("answered", 1),
                                   ("cached", 1)):
                assert (f'leadflow_enrichment_provider_lookups_total{{outcome="{outcome}",service="enrichment"}} '
                        f'{count}.0') in metrics


async def test_directory_match_with_firmographics_does_not_ask_the_provider(enrichment_env):
    async with fake_provider() as provider:
        settings = enrichment_settings(enrichment_env, provider_url=provider.url)
        async with running(settings) as service:
            lead_id = await service.capture(email="ada@acme.com")
            data = (await service.enriched(lead_id)).data
            assert data.account is not None and data.account.account_id == "acct-acme"
            assert data.partial is False
            assert provider.hits == 0


async def test_unreachable_provider_yields_partial_at_once(enrichment_env):
    port = free_port()
    settings = enrichment_settings(enrichment_env, provider_url=f"http://127.0.0.1:{port}/x",
                                   provider_timeout_seconds=2.0, provider_retries=1)
    async with running(settings) as service:
        lead_id = await service.capture(email=f"hedy@{unique_domain('nowhere')}")
        data = (await service.enriched(lead_id)).data
        assert data.partial_reasons == ["provider_error"]
        read = (await service.client.get(f"/v1/leads/{lead_id}", headers=ADMIN)).json()
        assert read["enrichment_ms"] < 1500, "connection refused is not waited out to the 2 s timeout"


async def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_provider_lookup_holds_no_transaction_or_lock(enrichment_env):
    async with fake_provider() as provider:
        provider.mode = "hang"
        settings = enrichment_settings(enrichment_env, provider_url=provider.url, provider_timeout_seconds=15.0)
        async with running(settings) as service:
            email = f"mary@{unique_domain('heldco')}"
            lead_id = await service.capture(email=email)
            await _wait_for(lambda: provider.hits == 1)
            # The provider has the request. Before, the fill's transaction held the email's lock meanwhile.
            conn = await asyncpg.connect(asyncpg_dsn(enrichment_env.database_url))
            try:
                key = f"lead-email:{email_key(email)}"
                assert await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key)
                await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'")
                assert waiting == 0
            finally:
                await conn.close()
            provider.released.set()
            data = (await service.enriched(lead_id)).data
            assert (data.partial, data.profile.industry) == (False, "Software")
            read = (await service.client.get(f"/v1/leads/{lead_id}", headers=ADMIN)).json()
            assert read["enrichment_ms"] > 0, "the lookup's time counts towards the fill's enrichment"


async def test_a_batch_asks_the_provider_side_by_side_and_once_per_domain(enrichment_env):
    async with fake_provider() as provider:
        provider.mode = "hang"
        settings = enrichment_settings(enrichment_env, provider_url=provider.url, provider_timeout_seconds=15.0,
                                       provider_concurrency=2)
        async with running(settings) as service:
            shared, other, third = unique_domain("batchco"), unique_domain("otherco"), unique_domain("thirdco")
            now = datetime.now(UTC)
            events = [new_event(LeadCaptured(lead_id=str(uuid.uuid4()), form_key="demo", submitted_at=now,
                                             contact=LeadContact(email=f"{name}@{company}")),
                                source="capture", subject=str(uuid.uuid4()), lead_captured_at=now)
                      for name, company in (("ann", shared), ("bob", shared), ("cyd", other), ("dee", third))]
            prefetch = asyncio.create_task(prefetch_firmographics(events, app_deps(service.app)))
            # Two lookups in flight at once (the concurrency), and none more until one ends.
            await _wait_for(lambda: provider.hits == 2)
            await asyncio.sleep(0.2)
            assert provider.hits == 2
            provider.released.set()
            prefetched = await prefetch
            assert provider.hits == 3, "three domains, each asked once"
            found = [prefetched[f"firmographics:{event.id}"] for event in events]
            assert [company for company, _ in found] == [shared, shared, other, third]
            assert [(lookup.facts is not None, lookup.cached) for _, lookup in found] == [
                (True, False), (True, True), (True, False), (True, False)]
