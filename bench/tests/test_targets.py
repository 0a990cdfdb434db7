"""The report's verdicts: by how much each target is missed, and reasons read from the run itself."""

from __future__ import annotations

from typing import Any

from bench import report, targets


def _hop(p50: float) -> dict[str, float]:
    return {"n": 100, "p50": p50, "p95": p50 * 2, "p99": p50 * 3, "max": p50 * 4}


def _step(rate: float | None, *, routed_p50: float, hops: dict[str, float], cores: float, cpu_ms: float,
          sustained: bool = True, webhook_p99: float = 100.0, trend: tuple[float, float] = (20.0, 22.0),
          routed_rate: float | None = None) -> dict[str, Any]:
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
        "webhook": {"capture_to_webhook_ms": {"p50": webhook_p99 / 3, "p99": webhook_p99}},
        "end_latency_trend_ms": {"first_third_p50": trend[0], "last_third_p50": trend[1]},
        "sustained": sustained,
        "stages": stages,
        "resources": {
            "_machine": {"cpu_cores": cores, "cpu_ms_per_lead": cpu_ms},
            "_others": {"cpu_cores": 0.01, "cpu_ms_per_lead": 0.1},
            "postgres": {"cpu_cores": cores / 3, "cpu_ms_per_lead": cpu_ms / 3},
            "routing": {"cpu_cores": cores / 6, "cpu_ms_per_lead": cpu_ms / 6},
            "observer": {"cpu_cores": 0.05, "cpu_ms_per_lead": 1.0},
        },
    }


def _run() -> dict[str, Any]:
    pipeline = [
        _step(10, routed_p50=30, hops={"captured": 5, "enriched": 8, "scored": 8, "routed": 9, "delivered": 8},
              cores=0.4, cpu_ms=40),
        _step(100, routed_p50=2000, hops={"captured": 30, "enriched": 60, "scored": 80, "routed": 1800,
                                          "delivered": 300},
              cores=1.95, cpu_ms=24, sustained=False, webhook_p99=4000, trend=(1000, 3000), routed_rate=80),
        _step(None, routed_p50=4000, hops={"captured": 900, "routed": 2000}, cores=1.96, cpu_ms=20, routed_rate=98),
    ]
    floor = [
        {"step": "10", "capture_to_routed_observed_ms": _hop(8),
         "stages": {"captured": {"observed_since_capture_ms": _hop(2), "hop_from_previous_ms": None},
                    "enriched": {"hop_from_previous_ms": _hop(2)}, "scored": {"hop_from_previous_ms": _hop(2)},
                    "routed": {"hop_from_previous_ms": _hop(2)}}},
        {"step": "100", "capture_to_routed_observed_ms": _hop(5), "stages": {}},
    ]
    result: dict[str, Any] = {"machine": {"cores": 2}, "pipeline": pipeline, "floor": floor,
                              "profile": {"rate": 75.0, "services": {"routing": {
                                  "samples": 100, "inclusive_pct_by_package": [
                                      ["asyncio", 90.0], ["leadflow_routing", 88.0], ["httpx", 40.0],
                                      ["asyncpg", 20.0]]}}}}
    result["floor_multiples"] = report.floor_multiples(pipeline, floor)
    return result


def test_missed_targets_say_by_how_much() -> None:
    verdicts = {v["target"]: v for v in targets.judge(_run())}
    p50 = verdicts["capture->routed p50 at 100 leads/s <= 50 ms"]
    assert (p50["met"], p50["measured"], p50["missed_by"]) == (False, 2000, 40.0)
    assert verdicts["capture->routed p99 at 100 leads/s <= 250 ms"]["missed_by"] == 24.0
    assert verdicts["p50 within 3x the floor at 100 leads/s"]["missed_by"] == round(400 / 3, 1)
    rate = verdicts[">= 300 leads/s sustained with p99 capture->webhook <= 1 s"]
    # 10 leads/s kept up with a 100 ms webhook p99; 100 leads/s did not.
    assert (rate["measured"], rate["missed_by"]) == (10, 30.0)


def test_reasons_come_from_the_run() -> None:
    verdicts = {v["target"]: v for v in targets.judge(_run())}
    why = " | ".join(verdicts["capture->routed p50 at 100 leads/s <= 50 ms"]["why"])
    assert "saturated: 1.95 of its 2 cores, 24.0 ms of CPU per lead (postgres 8.0, routing 4.0 ms" in why
    assert "80 leads/s were routed of 100 offered" in why and "from 1000 to 3000 ms" in why
    assert "slowest hop is the one into 'routed' (1800 ms p50" in why
    assert "2 cores carry about 100 leads/s (98 routed/s measured there)" in why
    assert "httpx 40 %, asyncpg 20 %" in why and "asyncio" not in why
    floor_why = verdicts["p50 within 3x the floor at 100 leads/s"]["why"]
    assert floor_why[0] == "nearest at 10 leads/s: 3.75x the floor (30.0 vs. 8.0 ms p50)"
    assert "enriched 8.0/2.0" in floor_why[1]
    rate_why = " | ".join(verdicts[">= 300 leads/s sustained with p99 capture->webhook <= 1 s"]["why"])
    assert ("the next step, 100 leads/s, was not sustained (80 routed/s), with a capture->webhook p99 "
            "of 4000 ms") in rate_why
    assert "'routed' (1800 ms p50" in rate_why and "delivered 300" in rate_why


def test_met_targets_give_no_reasons() -> None:
    run = _run()
    run["pipeline"][1] = _step(100, routed_p50=30, hops={"captured": 5, "routed": 9}, cores=0.9, cpu_ms=18)
    run["floor_multiples"] = report.floor_multiples(run["pipeline"], run["floor"])
    verdicts = {v["target"]: v for v in targets.judge(run)}
    p50 = verdicts["capture->routed p50 at 100 leads/s <= 50 ms"]
    assert (p50["met"], p50["missed_by"], p50["why"]) == (True, None, [])
    assert verdicts["p50 within 3x the floor at 100 leads/s"]["met"] is False  # 30 / 5 = 6x


def test_a_run_without_the_target_rate_says_so() -> None:
    run = _run()
    run["pipeline"] = [run["pipeline"][0], run["pipeline"][2]]
    verdicts = {v["target"]: v for v in targets.judge(run)}
    p50 = verdicts["capture->routed p50 at 100 leads/s <= 50 ms"]
    assert p50["measured"] is None and p50["met"] is False
    assert p50["why"] == ["no 100 leads/s step in this run (--rates)"]


def test_a_run_without_the_floor_says_so() -> None:
    run = _run()
    run["floor"], run["floor_multiples"] = [], {}
    verdict = next(v for v in targets.judge(run) if v["target"].startswith("p50 within"))
    assert verdict["measured"] is None and verdict["why"][0] == "no floor in this run (--skip-floor)"
