"""Unit checks of the benchmark's own machinery (run: uv run pytest bench/tests -q)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from pathlib import Path

from bench import prefill, profile, rawhttp
from bench.analysis import Observations, Submission, percentiles, send_to_webhook, summarize_step
from bench.floor import PAYLOAD_BYTES, padded
from bench.loadgen import FormFillFactory
from bench.observer import find_lead_id
from bench.resources import ResourceMonitor, postgres_process_kind
from bench.schedule import open_loop
from bench.steps import collector_watched, held_objects_frozen, step_duration, sustained


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
    before = time.time()
    try:
        answers = await asyncio.gather(*(client.request("POST", f"/x/{i}", b'{"a":1}') for i in range(10)))
    finally:
        await client.close()
        server.close()
    assert [a.status for a in answers] == [204] * 10
    assert all(before <= a.sent <= time.time() for a in answers)  # when each was written
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


def test_send_to_webhook_joins_the_generators_send_with_the_verified_arrival() -> None:
    obs = Observations()
    obs.feed(json.dumps({"k": "wh", "lead": "a", "arr": 10.100, "ver": 10.102, "ok": True}))
    obs.feed(json.dumps({"k": "wh", "lead": "b", "arr": 10.200, "ver": 10.201, "ok": False}))  # bad signature
    obs.feed(json.dumps({"k": "wh", "lead": "b", "arr": 10.300, "ver": 10.305, "ok": True}))  # the retry
    obs.feed(json.dumps({"k": "wh", "lead": "c", "arr": 10.050, "ok": True}))  # an older observer: no "ver"
    subs = [
        Submission("a", due=9.990, done=10.010, status=202, sent=10.000),
        Submission("b", due=10.000, done=10.020, status=202, sent=10.005),
        Submission("c", due=10.000, done=10.020, status=202, sent=10.010),
        # A repeat fill: its lead's webhook is the first fill's, so it is not counted again.
        Submission("a", due=10.0, done=10.02, status=202, kind="duplicate", sent=10.001),
        Submission("d", due=10.0, done=10.02, status=202, sent=10.0),  # no webhook yet
        Submission(None, due=10.0, done=10.02, status=0, error="Reset", sent=10.0),
    ]
    assert [round(x * 1000) for x in send_to_webhook(subs, obs)] == [102, 300, 40]


def test_step_summary_counts_each_email_once_and_reports_send_to_verified() -> None:
    obs = Observations()
    for lead in ("a", "b"):
        for stage, t in (("captured", 0.001), ("routed", 0.030)):
            obs.feed(json.dumps({"k": "ev", "stage": stage, "lead": lead, "time": 100 + t, "cap": 100.0,
                                 "arr": 100 + t, "sz": 1000 if stage == "captured" else 3000}))
        obs.feed(json.dumps({"k": "wh", "lead": lead, "arr": 100.05, "ver": 100.06, "ok": True}))
    subs = [Submission("a", 99.99, 100.0, 202, sent=99.99), Submission("b", 99.99, 100.0, 202, sent=99.99),
            Submission("dup", 99.99, 100.0, 202, kind="duplicate", sent=99.99)]
    s = summarize_step("10", 10, subs, (100.0, 101.0), obs, ("captured", "routed"))
    assert s["new_leads"] == 2 and s["distinct_leads"] == 3 and s["stages"]["captured"]["reached"] == 2
    assert s["webhook"]["verified"] == 2
    assert s["webhook"]["send_to_verified_ms"]["p50"] == 70.0
    assert s["payload_bytes"] == {"captured": 1000, "routed": 3000}


def test_a_step_lasts_long_enough_for_a_p99() -> None:
    assert step_duration(10, 20) == 200.0  # 2,000 leads at 10/s
    assert step_duration(50, 10) == 40.0  # 2,000 leads at 50/s
    assert step_duration(100, 10) == 60.0  # from 100 leads/s on, the sustained target's 60 s
    assert step_duration(200, 90) == 90.0  # already long enough
    assert step_duration(400, 10) == 60.0
    assert step_duration(1000, 10) == 60.0
    assert step_duration(10, 8, min_leads=0, long_seconds=0) == 8.0  # --quick
    assert step_duration(400, 8, min_leads=0, long_seconds=0) == 8.0


def test_quick_look_flag_shortens_the_steps() -> None:
    from bench.__main__ import build_steps, parse_args

    steps = build_steps(parse_args(["--rates", "25,400", "--duration", "10", "--max-seconds", "30",
                                    "--duplicate-share", "0.2"]))
    # 2,000 new leads when a fifth of the fills repeat an earlier person: 2,500 fills.
    assert [(s.name, s.duration) for s in steps] == [("25", 100.0), ("400", 60.0), ("max", 30.0)]
    quick = build_steps(parse_args(["--rates", "25,400", "--duration", "10", "--quick", "--max-seconds", "0"]))
    assert [(s.name, s.duration) for s in quick] == [("25", 10.0), ("400", 10.0)]


def test_prefill_writes_every_services_lead_rows_apart_from_generated_leads() -> None:
    expected = {"capture": ["lead"], "enrichment": ["lead", "lead_fill"],
                "scoring": ["lead_score", "score_change", "lead_identity"],
                "routing": ["lead", "assignment"], "sla": ["lead", "lead_event", "sla_clock"]}
    for service, tables in expected.items():
        sql = prefill.statements(service, 1_000_000)
        assert prefill.tables_of(sql) == tables
        for statement in sql:
            assert "FROM generate_series(1, 1000000) AS g" in statement
            assert "'pf-' || g" in statement  # ids that no capture UUID can equal
        if service in ("capture", "enrichment", "scoring"):
            assert any("@prefill.invalid" in statement for statement in sql)
    assert prefill.statements("capture", 0) == []
    assert "CROSS JOIN unnest(ARRAY['captured', 'enriched', 'scored', 'routed'])" in prefill.sla_sql(5)[1]
    # Generated emails carry the run id and an .example or mail provider's domain: never @prefill.invalid.
    factory = FormFillFactory("r1")
    assert not any(fill["email"].endswith("@prefill.invalid") for _kind, fill in (factory.next() for _ in range(200)))


def test_floor_records_are_padded_to_the_pipelines_payload_size() -> None:
    body = b'{"email":"x@example.com"}'
    grown = padded(body, 900)
    assert len(grown) == 900 and json.loads(grown)["email"] == "x@example.com"
    assert padded(body, 10) == body  # never shorter
    assert len(padded(b'{"email":"bench@example.com"}', PAYLOAD_BYTES["captured"])) == PAYLOAD_BYTES["captured"]


def test_a_step_whose_capture_answers_late_is_not_sustained() -> None:
    summary = {"offered_rate": 100.0, "offered": 800, "accepted": 800, "distinct_leads": 800,
               "achieved_capture_rate": 98.0, "end_latency_trend_ms": {"first_third_p50": 40.0, "last_third_p50": 45.0}}
    assert sustained(summary, "complete", 0)
    # Every request accepted, but over 27 s for an 8 s step: capture queued them.
    assert not sustained({**summary, "achieved_capture_rate": 29.3}, "complete", 0)
    assert not sustained(summary, "timeout", 0)
    assert not sustained(summary, "complete", 20)  # 20 of 800 leads never came through
    assert not sustained({**summary, "end_latency_trend_ms": {"first_third_p50": 40.0, "last_third_p50": 900.0}},
                         "complete", 0)
    assert sustained({**summary, "offered_rate": None, "achieved_capture_rate": 5.0}, "complete", 0)  # 'max'


def test_set_gives_one_service_a_setting_and_refuses_an_unknown_service() -> None:
    from bench.__main__ import parse_args, service_settings

    args = parse_args(["--set", "routing.webhook_subscription_concurrency=8", "--set", "sla.LOG_LEVEL=DEBUG"])
    assert service_settings(args.settings) == {"routing": {"WEBHOOK_SUBSCRIPTION_CONCURRENCY": "8"},
                                               "sla": {"LOG_LEVEL": "DEBUG"}}
    for wrong in ("crm.LOG_LEVEL=DEBUG", "routing.LOG_LEVEL", "LOG_LEVEL=DEBUG"):
        try:
            service_settings([wrong])
        except SystemExit as exc:
            assert wrong in str(exc)
        else:
            raise AssertionError(f"--set {wrong} was taken")


def test_the_drivers_collections_during_a_step_are_timed_and_the_watch_ends_with_it() -> None:
    with collector_watched() as pauses:
        gc.collect()
        gc.collect(0)
    assert pauses.collections == 2 and pauses.full == 1
    assert 0 < pauses.max_s <= pauses.total_s
    assert pauses not in gc.callbacks
    gc.collect()
    assert pauses.collections == 2
    assert pauses.as_dict()["full"] == 1


def test_what_the_driver_held_before_a_step_is_not_walked_by_its_collections() -> None:
    held = [[i] for i in range(200_000)]
    with held_objects_frozen():
        assert gc.get_freeze_count() >= len(held)
    assert gc.get_freeze_count() == 0


def test_postgres_processes_are_told_apart_by_their_titles() -> None:
    databases = {"leadflow_capture": "capture", "leadflow_sla": "sla"}

    def kind(title: str) -> str:
        return postgres_process_kind(title, databases)

    assert kind("postgres: leadflow leadflow_capture 127.0.0.1(50312) idle") == "backend capture"
    assert kind("postgres: leadflow leadflow_sla [local] UPDATE") == "backend sla"
    assert kind("postgres: postgres postgres 127.0.0.1(50400) SELECT") == "backend other"
    assert kind("postgres: autovacuum worker leadflow_sla") == "autovacuum"
    assert kind("postgres: walwriter ") == "walwriter"
    assert kind("postgres: logical replication launcher ") == "logical replication launcher"
    assert kind("/usr/lib/postgresql/16/bin/postgres -D /tmp/data -p 5432") == "postmaster"


async def test_a_groups_cpu_is_broken_down_by_what_its_processes_do() -> None:
    monitor = ResourceMonitor(interval=0.05)
    monitor.add("driver", os.getpid(), kind=lambda proc: f"pid {proc.pid}")
    monitor.start()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    await asyncio.sleep(0.1)
    found = await monitor.stop()
    assert found["driver"]["cpu_seconds"] >= 0.15
    assert found["driver"]["cpu_seconds_by_kind"] == {f"pid {os.getpid()}": found["driver"]["cpu_seconds"]}
