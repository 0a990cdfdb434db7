"""The funnel gauges' window is scanned once a refresh interval, not once per replica: one replica computes
the figures and stores them, every replica publishes what is stored, and a replica that dies computing holds
them only until its lease passes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from leadflow_kit.clock import FrozenClock
from leadflow_kit.db import driver_connection
from leadflow_sla import funnel_gauges
from leadflow_sla.bootstrap import Deps, bootstrap
from leadflow_sla.funnel_gauges import FunnelGauges, refresh_funnel_gauges
from leadflow_sla.funnel_gauges_store import claim_figures

NOW = datetime.now(UTC).replace(microsecond=0)


def published(registry: CollectorRegistry) -> dict[tuple[str, tuple[str, ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect() for sample in family.samples
            if sample.name.startswith(("leadflow_funnel", "leadflow_team"))}


async def capture(deps: Deps, source: str, count: int) -> None:
    async with deps.platform.db.transaction() as session:
        await (await driver_connection(session)).executemany(
            "INSERT INTO lead (lead_id, captured_at, source, team_id, speed_to_lead_seconds)"
            " VALUES ($1, $2, $3, 't', 60)",
            [(str(uuid.uuid4()), NOW - timedelta(hours=1), source) for _ in range(count)])


async def test_one_replica_computes_the_figures_and_every_replica_publishes_them(sla_env: Any) -> None:
    # The service's clock (the business's time) stands still; the replicas' wall clock moves.
    clock, wall = FrozenClock(NOW), FrozenClock(NOW)
    settings = sla_env.settings(funnel_gauge_refresh_seconds=60)
    first, second = bootstrap(settings, clock), bootstrap(settings, clock)
    registries = CollectorRegistry(), CollectorRegistry()
    first_gauges, second_gauges = FunnelGauges(registries[0]), FunnelGauges(registries[1])

    def figures() -> tuple[dict[Any, float], dict[Any, float]]:
        return published(registries[0]), published(registries[1])

    captured = ("leadflow_funnel_leads", (("source", "google"), ("stage", "captured")))
    try:
        await capture(first, "google", 2)
        assert await refresh_funnel_gauges(first, first_gauges, wall)
        assert not await refresh_funnel_gauges(second, second_gauges, wall)
        mine, theirs = figures()
        assert mine[captured] == 2 and mine == theirs

        # Within half an interval of the last computation nobody computes: the stored figures stand.
        await capture(first, "google", 1)
        wall.advance(timedelta(seconds=20))
        assert not await refresh_funnel_gauges(second, second_gauges, wall)
        assert not await refresh_funnel_gauges(first, first_gauges, wall)
        assert figures()[1][captured] == 2
        # Past it, the first replica to look computes, and the other publishes its figures.
        wall.advance(timedelta(seconds=20))
        assert await refresh_funnel_gauges(second, second_gauges, wall)
        assert not await refresh_funnel_gauges(first, first_gauges, wall)
        mine, theirs = figures()
        assert theirs[captured] == 3 and mine == theirs

        # A replica that died computing holds the figures for its lease, then any replica computes them.
        await capture(first, "google", 1)
        wall.advance(timedelta(seconds=60))
        async with first.platform.db.transaction() as session:
            assert await claim_figures(session, wall.now(), wall.now() + timedelta(seconds=120),
                                       wall.now() - timedelta(seconds=30))
        wall.advance(timedelta(seconds=119))
        assert not await refresh_funnel_gauges(first, first_gauges, wall)
        assert not await refresh_funnel_gauges(second, second_gauges, wall)
        assert figures()[0][captured] == 3
        wall.advance(timedelta(seconds=1))
        assert await refresh_funnel_gauges(first, first_gauges, wall)
        assert figures()[0][captured] == 4
    finally:
        await first.platform.db.dispose()
        await second.platform.db.dispose()


async def test_a_replica_whose_computation_fails_lets_the_next_round_compute(
    sla_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Used as the wall clock too: a day after the other test's computations.
    clock = FrozenClock(NOW + timedelta(days=1))
    settings = sla_env.settings(funnel_gauge_refresh_seconds=60)
    failing, other = bootstrap(settings, clock), bootstrap(settings, clock)

    async def scan_fails(*_: Any) -> None:
        raise RuntimeError("the scan failed")

    try:
        with monkeypatch.context() as patched:
            patched.setattr(funnel_gauges, "funnel_counts", scan_fails)
            with pytest.raises(RuntimeError):
                await refresh_funnel_gauges(failing, FunnelGauges(CollectorRegistry()), clock)
        # Its lease was given back: the other replica computes at once, not two intervals later.
        assert await refresh_funnel_gauges(other, FunnelGauges(CollectorRegistry()), clock)
    finally:
        await failing.platform.db.dispose()
        await other.platform.db.dispose()
