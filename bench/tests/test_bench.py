"""Unit checks of the benchmark's own machinery (run: uv run pytest bench/tests -q)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bench import profile, rawhttp
from bench.analysis import Observations, Submission, percentiles, summarize_step
from bench.loadgen import FormFillFactory
from bench.observer import find_lead_id
from bench.schedule import open_loop


def test_percentiles_nearest_rank_in_ms() -> None:
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentiles(values) == {"n": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert percentiles([])["p50"] is None


def test_find_lead_id_in_nested_payloads() -> None:
    assert find_lead_id({"type": "lead.routed", "data": {"lead": {"id": "L1"}}}) == "L1"
    assert find_lead_id({"data": {"assignment": {"lead_id": "L2"}}}) == "L2"
    assert find_lead_id({"data": [{"x": 1}, {"leadId": "L3"}]}) == "L3"
    assert find_lead_id({"data": {}}) is None


def test_form_fills_vary_and_repeat_people() -> None:
    factory = FormFillFactory("r1", duplicate_share=0.2)
    kinds = [factory.next() for _ in range(500)]
    fresh = [fill for kind, fill in kinds if kind == "lead"]
    repeats = [fill for kind, fill in kinds if kind == "duplicate"]
    assert 50 < len(repeats) < 150
    assert len({f["email"] for f in fresh}) == len(fresh)
    assert all(r["email"] in factory.emails for r in repeats)
    assert len({f["country"] for f in fresh}) > 10 and len({f["company"] for f in fresh}) > 20


def test_summary_joins_submissions_with_observations(tmp_path: Path) -> None:
    obs = Observations()
    cap = 1000.0
    for stage, t in (("captured", 0.001), ("enriched", 0.010), ("routed", 0.030)):
        record = {"k": "ev", "stage": stage, "lead": "a", "time": cap + t, "cap": cap, "arr": cap + t + 0.002}
        obs.feed(json.dumps(record))
    obs.feed(json.dumps({"k": "wh", "lead": "a", "arr": cap + 0.050, "ok": True}))
    subs = [Submission("a", cap - 0.004, cap + 0.001, 202), Submission(None, cap, cap + 0.1, 0, error="Reset")]
    s = summarize_step("10", 10, subs, (cap, cap + 1), obs, ("captured", "enriched", "routed"))
    assert s["capture_to_routed_ms"]["p50"] == 30.0
    assert s["webhook"]["capture_to_webhook_ms"]["p50"] == 50.0
    assert s["stages"]["enriched"]["hop_from_previous_ms"]["p50"] == 9.0
    assert s["errors"] == {"lead:Reset": 1}
    assert s["routed"] == 1 and s["accepted"] == 1


async def test_raw_http_round_trip_with_keep_alive() -> None:
    seen: list[rawhttp.Request] = []

    async def handler(request: rawhttp.Request) -> int:
        seen.append(request)
        return 204

    server = await rawhttp.serve(handler)
    port = server.sockets[0].getsockname()[1]
    client = rawhttp.HttpClient("127.0.0.1", port, max_connections=2)
    try:
        answers = await asyncio.gather(*(client.request("POST", f"/x/{i}", b'{"a":1}') for i in range(10)))
    finally:
        await client.close()
        server.close()
    assert [a.status for a in answers] == [204] * 10
    assert sorted(r.path for r in seen) == sorted(f"/x/{i}" for i in range(10))
    assert all(r.body == b'{"a":1}' for r in seen)


async def test_open_loop_keeps_its_schedule_when_requests_are_slow() -> None:
    started: list[float] = []

    async def slow(_i: int, _due: float) -> None:
        started.append(time.monotonic())
        await asyncio.sleep(0.3)  # far slower than the 20 ms interval: open loop must not wait

    result = await open_loop(50, 0.4, slow)
    assert result.offered == 20
    assert started[-1] - started[0] < 0.45
    assert result.max_inflight >= 10


def test_profile_summary_groups_by_package(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "run (uvicorn/server.py:1);execute (asyncpg/connection.py:2) 3\n"
        "run (uvicorn/server.py:1);handle (leadflow_capture/api.py:9);dumps (json/__init__.py:4) 1\n"
    )
    summary = profile.summarize(raw, expected_samples=8)
    assert summary["samples"] == 4 and summary["busy_pct"] == 50.0
    assert dict(summary["inclusive_pct_by_package"])["uvicorn"] == 100.0
    assert dict(summary["self_pct_by_package"]) == {"asyncpg": 75.0, "json": 25.0}
