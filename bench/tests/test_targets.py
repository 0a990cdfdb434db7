"""The report's verdicts: by how much each target is missed, and reasons read from the run itself."""

from __future__ import annotations

from typing import Any

from bench import report, targets


def _hop(p50: float) -> dict[str, float]:
    return {"n": 100, "p50": p50, "p95": p50 * 2, "p99": p50 * 3, "max": p50 * 4}


def _step(rate: float | None, *, routed_p50: float, hops: dict[str, float], cores: float, cpu_ms: float,
          sustained: bool = True, webhook_p99: float = 100.0, trend: tuple[float, float] = (20.0, 22.0),
          routed_rate: float | None = None, seconds: float = 20.0, unverified: int = 0) -> dict[str, Any]:
    stages: dict[str, Any] = {}
    for index, (name, value) in enumerate(hops.items()):
        stages[name] = {"observed_since_capture_ms": _hop(value),
                        "hop_from_previous_ms": None if index == 0 else _hop(value)}
    return {
        "step": "max" if rate is None else f"{rate:g}",
        "offered_rate": rate,
        "achieved_routed_rate": routed_rate if routed_rate is not None else rate or 90.0,
        "capture_to_routed_ms": _hop(routed_p50),
        "capture_to_routed_observed_ms": _hop(routed_p50),
        "duration_s": seconds,
        "new_leads": 2000,
        "webhook": {"capture_to_webhook_ms": {"p50": webhook_p99 / 3, "p99": webhook_p99},
                    "send_to_verified_ms": {"p50": webhook_p99 / 4, "p99": webhook_p99},
                    "verified": 2000 - unverified},
        "end_latency_trend_ms": {"first_third_p50": trend[0], "last_third_p50": trend[1]},
        "sustained": sustained,
        "stages": stages,
        "resources": {
            "_machine": {"cpu_cores": cores, "cpu_ms_per_lead": cpu_ms},
            "_others": {"cpu_cores": 0.01, "cpu_ms_per_lead": 0.1},
            "postgres": {"cpu_cores": cores / 3, "cpu_ms_per_lead": cpu_ms / 3},
            "routing": {"cpu_cores": cores / 6, "cpu_ms_per_lead": cpu_ms / 6},
            "observer": {"cpu_cores": 0.05, "cpu_ms_per_lead": 1.0},
            "loadgen": {"cpu_cores": 0.1, "cpu_ms_per_lead": 2.0},
        },
    }


def _floor_step(name: str, p50: float, cpu_ms: float) -> dict[str, Any]:
    return {"step": name, "capture_to_routed_observed_ms": _hop(p50),
            "stages": {"captured": {"observed_since_capture_ms": _hop(p50 / 4), "hop_from_previous_ms": None},
                       "enriched": {"hop_from_previous_ms": _hop(p50 / 4)},
                       "scored": {"hop_from_previous_ms": _hop(p50 / 4)},
                       "routed": {"hop_from_previous_ms": _hop(p50 / 4)}},
            "resources": {"kafka": {"cpu_ms_per_lead": cpu_ms / 2}, "postgres": {"cpu_ms_per_lead": cpu_ms / 2},
                          "loadgen": {"cpu_ms_per_lead": 5.0}}}


def _run() -> dict[str, Any]:
    pipeline = [
        _step(10, routed_p50=30, hops={"captured": 5, "enriched": 8, "scored": 8, "routed": 9, "delivered": 8},
              cores=0.4, cpu_ms=40),
        _step(100, routed_p50=2000, hops={"captured": 30, "enriched": 60, "scored": 80, "routed": 1800,
                                          "delivered": 300},
              cores=1.95, cpu_ms=24, sustained=False, webhook_p99=4000, trend=(1000, 3000), routed_rate=80),
        _step(400, routed_p50=5000, hops={"captured": 900, "routed": 2000}, cores=1.97, cpu_ms=21,
              sustained=False, webhook_p99=9000, routed_rate=95, seconds=60, unverified=300),
        _step(None, routed_p50=4000, hops={"captured": 900, "routed": 2000}, cores=1.96, cpu_ms=20, routed_rate=98),
    ]
    durable = [_floor_step("10", 16, 3.0), _floor_step("100", 10, 2.0), _floor_step("max", 40, 1.5)]
    result: dict[str, Any] = {"machine": {"cores": 2}, "pipeline": pipeline, "durable_floor": durable,
                              "profile": {"rate": 75.0, "services": {"routing": {
                                  "samples": 100, "inclusive_pct_by_package": [
                                      ["asyncio", 90.0], ["leadflow_routing", 88.0], ["httpx", 40.0],
                                      ["asyncpg", 20.0]]}}}}
    result["durable_floor_multiples"] = report.floor_multiples(pipeline, durable)
    return result


SUSTAINED = ">= 400 leads/s sustained for 60 s, every lead's webhook verified, p99 send->webhook <= 1 s"
P50 = "send->webhook verified p50 at 100 leads/s <= 25 ms"
P99 = "send->webhook verified p99 at 100 leads/s <= 150 ms"
CPU = "CPU per lead at the saturation step <= 4 ms (all processes of the system)"
FLOOR_P50 = "p50 capture->routed at 100 leads/s <= 2x the durable floor's"
FLOOR_CPU = "CPU per lead <= 2x the durable floor's at the highest rate carried (else 100 leads/s); here 10"


def test_missed_targets_say_by_how_much() -> None:
    verdicts = {v["target"]: v for v in targets.judge(_run())}
    p50 = verdicts[P50]
    assert (p50["met"], p50["measured"], p50["missed_by"]) == (False, 1000, 40.0)
    assert verdicts[P99]["missed_by"] == round(4000 / 150, 1)
    assert verdicts[FLOOR_P50]["measured"] == 200.0 and verdicts[FLOOR_P50]["missed_by"] == 100.0
    # Saturation: postgres 20/3 + routing 20/6 = 10 ms (the observer and the generator are not the system's).
    assert verdicts[CPU]["measured"] == 10.0 and verdicts[CPU]["missed_by"] == 2.5
    # At 10 leads/s, the highest rate carried: ours postgres 40/3 + routing 40/6 = 20 ms, the floor's 3 ms.
    assert verdicts[FLOOR_CPU]["measured"] == round(20.0 / 3.0, 2)
    rate = verdicts[SUSTAINED]
    # 10 leads/s kept up, but ran 20 s, not 60: nothing counts toward the 400.
    assert (rate["measured"], rate["met"]) == (None, False)


def test_reasons_come_from_the_run() -> None:
    verdicts = {v["target"]: v for v in targets.judge(_run())}
    why = " | ".join(verdicts[P50]["why"])
    assert "saturated: 1.95 of its 2 cores, 24.0 ms of CPU per lead (postgres 8.0, routing 4.0 ms" in why
    assert "80 leads/s were routed of 100 offered" in why and "from 1000 to 3000 ms" in why
    assert "slowest hop is the one into 'routed' (1800 ms p50" in why
    assert "2 cores carry about 100 leads/s (98 routed/s measured there)" in why
    assert "httpx 40 %, asyncpg 20 %" in why and "asyncio" not in why
    floor_why = " | ".join(verdicts[FLOOR_P50]["why"])
    assert "200x at 100 (2000.0 vs. 10.0 ms p50 capture->routed)" in floor_why
    assert "ours/durable floor in ms: captured 30.0/2.5" in floor_why
    rate_why = " | ".join(verdicts[SUSTAINED]["why"])
    assert ("the step at 400 leads/s: it was not sustained (95 routed/s); 300 of its 2000 leads had no verified "
            "webhook; its send->webhook p99 was 9000 ms") in rate_why
    cpu_why = " | ".join(verdicts[CPU]["why"])
    assert "the generator and the observer took 3.0 ms per lead more (not counted)" in cpu_why


def test_a_long_step_that_kept_up_meets_the_rate_target() -> None:
    run = _run()
    run["pipeline"][2] = _step(400, routed_p50=50, hops={"captured": 5, "routed": 9}, cores=1.5, cpu_ms=3,
                               seconds=60, webhook_p99=600)
    verdict = next(v for v in targets.judge(run) if v["target"] == SUSTAINED)
    assert (verdict["met"], verdict["measured"], verdict["why"]) == (True, 400, [])
    run["pipeline"][2]["webhook"]["verified"] -= 1  # one lead without a verified webhook: not every lead
    verdict = next(v for v in targets.judge(run) if v["target"] == SUSTAINED)
    assert verdict["met"] is False
    assert any("1 of its 2000 leads had no verified webhook" in reason for reason in verdict["why"])


def test_met_targets_give_no_reasons() -> None:
    run = _run()
    run["pipeline"][1] = _step(100, routed_p50=15, hops={"captured": 5, "routed": 9}, cores=0.9, cpu_ms=18,
                               webhook_p99=80)
    run["durable_floor_multiples"] = report.floor_multiples(run["pipeline"], run["durable_floor"])
    verdicts = {v["target"]: v for v in targets.judge(run)}
    p50 = verdicts[P50]
    assert (p50["met"], p50["measured"], p50["missed_by"], p50["why"]) == (True, 20.0, None, [])
    assert verdicts[FLOOR_P50]["met"] is True  # 15 / 10 = 1.5x


def test_a_run_without_the_target_rate_says_so() -> None:
    run = _run()
    run["pipeline"] = [run["pipeline"][0], run["pipeline"][3]]
    verdicts = {v["target"]: v for v in targets.judge(run)}
    p50 = verdicts[P50]
    assert p50["measured"] is None and p50["met"] is False
    assert p50["why"] == ["no 100 leads/s step in this run (--rates)"]


def test_a_run_without_the_floor_says_so() -> None:
    run = _run()
    run["durable_floor"], run["durable_floor_multiples"] = [], {}
    verdict = next(v for v in targets.judge(run) if v["target"] == FLOOR_P50)
    assert verdict["measured"] is None and verdict["why"][0] == "no durable floor in this run (--skip-floor)"


def test_floor_multiples_compare_latency_and_the_systems_cpu() -> None:
    run = _run()
    multiples = run["durable_floor_multiples"]
    assert multiples["10"]["multiple_p50"] == round(30 / 16, 2)
    # ours at 10 leads/s: postgres 40/3 + routing 40/6 = 20 ms; the floor's: kafka + postgres = 3 ms.
    assert multiples["10"]["ours_cpu_ms_per_lead"] == 20.0 and multiples["10"]["floor_cpu_ms_per_lead"] == 3.0
    assert multiples["10"]["multiple_cpu"] == round(20 / 3, 2)
    assert "400" not in multiples  # no floor step of that name


def test_cpu_against_the_durable_floor_falls_back_to_the_target_rate() -> None:
    run = _run()
    run["pipeline"][0]["sustained"] = False  # nothing carried: judged at 100 leads/s, never at 'max'
    verdict = next(v for v in targets.judge(run) if v["target"].startswith("CPU per lead <= 2x"))
    assert verdict["target"].endswith("here 100")
    assert verdict["measured"] == run["durable_floor_multiples"]["100"]["multiple_cpu"] == round(12.0 / 2.0, 2)


def test_the_lead_search_is_judged_by_its_p95_with_the_slowest_queries_as_reasons() -> None:
    run = _run()
    assert not any(v["target"].startswith("lead search") for v in targets.judge(run))
    run["search"] = {"prefilled_leads": 1000000, "queries": 1300, "errors": {},
                     "latency_ms": {"n": 1300, "p50": 6.0, "p95": 75.0, "p99": 120.0, "max": 300.0},
                     "by_kind_ms": {"email": _hop(2.0), "tier by score": _hop(40.0), "latest": _hop(5.0)}}
    verdict = next(v for v in targets.judge(run) if v["target"].startswith("lead search"))
    assert verdict["target"] == "lead search (GET /v1/leads) p95 <= 50 ms over 1,000,000 leads"
    assert (verdict["met"], verdict["measured"], verdict["missed_by"]) == (False, 75.0, 1.5)
    assert verdict["why"] == ["slowest p95 by kind of query in ms: tier by score 80, latest 10, email 4"]
    run["search"]["latency_ms"]["p95"] = 30.0
    verdict = next(v for v in targets.judge(run) if v["target"].startswith("lead search"))
    assert verdict["met"] and verdict["why"] == []
