"""The issue's targets judged against one run: what was measured, by how much a target is missed,
and why. Every reason is read from the same run's figures (CPU per process, the hops, the floor,
the profile), so the report explains the run it belongs to, not a run from last week."""

from __future__ import annotations

from typing import Any

from bench.report import measured

TARGET_RATE = 100.0  # leads/s at which the latency targets hold
ROUTED_P50_MS = 50.0
ROUTED_P99_MS = 250.0
SUSTAINED_RATE = 300.0
WEBHOOK_P99_MS = 1000.0
FLOOR_MULTIPLE = 3.0
# Past this share of the machine's cores, waiting for a CPU, not work, sets the latency.
SATURATED_SHARE = 0.85
# The benchmark's own processes: on the machine's CPU, but not the product's.
BENCH_PROCESSES = ("loadgen", "observer")
# Packages every service's profile is mostly "inside" (the event loop, the server, the kit): saying
# so explains nothing.
_FRAME_PACKAGES = {"asyncio", "python", "uvicorn", "contextlib", "leadflow_kit", "weakref", "uvloop"}


def _p(block: dict[str, Any] | None, key: str) -> float | None:
    return None if not block else block.get(key)


def _webhook_p99(step: dict[str, Any]) -> float | None:
    return _p((step.get("webhook") or {}).get("capture_to_webhook_ms"), "p99")


def _rate(step: dict[str, Any]) -> str:
    return "the 'max' step" if step.get("offered_rate") is None else f"{step['offered_rate']:g} leads/s"


def _verdict(target: str, value: float | None, unit: str, goal: float, *, at_most: bool,
             why: list[str]) -> dict[str, Any]:
    met = value is not None and (value <= goal if at_most else value >= goal)
    missed_by = None
    if not met and value:
        missed_by = round(value / goal if at_most else goal / value, 1)
    return {"target": target, "measured": value, "unit": unit, "met": met, "missed_by": missed_by,
            "why": [] if met else why}


def cpu_reason(step: dict[str, Any], cores: int) -> str:
    """How busy the machine was at ``step`` and what a lead cost it, by process."""
    resources = step.get("resources") or {}
    machine = resources.get("_machine")
    if not machine:
        return f"no CPU figures for {_rate(step)}"
    ours = sorted(((name, r["cpu_ms_per_lead"]) for name, r in resources.items()
                   if not name.startswith("_") and name not in BENCH_PROCESSES),
                  key=lambda item: -item[1])
    bench_ms = sum(resources[name]["cpu_ms_per_lead"] for name in BENCH_PROCESSES if name in resources)
    top = ", ".join(f"{name} {ms:.1f}" for name, ms in ours[:4])
    used, per_lead = machine["cpu_cores"], machine["cpu_ms_per_lead"]
    state = "saturated" if used >= SATURATED_SHARE * cores else "not saturated"
    text = (f"at {_rate(step)} the machine was {state}: {used:.2f} of its {cores} cores, "
            f"{per_lead:.1f} ms of CPU per lead ({top} ms; the benchmark's own generator and "
            f"observer {bench_ms:.1f} ms)")
    others = resources.get("_others")
    if others and others["cpu_cores"] >= 0.2:
        text += f"; processes outside the run took {others['cpu_cores']:.2f} cores"
    return text


def capacity(result: dict[str, Any]) -> dict[str, float] | None:
    """What the machine's cores carry at the CPU a lead costs when batches are largest (the
    saturation step, else the busiest fixed rate)."""
    pipeline = measured(result.get("pipeline", []))
    saturated = [s for s in pipeline if s.get("offered_rate") is None] or pipeline[-1:]
    if not saturated or not (saturated[0].get("resources") or {}).get("_machine"):
        return None
    step = saturated[0]
    per_lead = step["resources"]["_machine"]["cpu_ms_per_lead"]
    if not per_lead:
        return None
    cores = result["machine"]["cores"]
    return {"cpu_ms_per_lead": per_lead, "cores": cores, "leads_per_s": cores * 1000 / per_lead,
            "routed_per_s": step.get("achieved_routed_rate") or 0.0}


def capacity_reason(result: dict[str, Any]) -> str | None:
    cap = capacity(result)
    if cap is None:
        return None
    return (f"where batches are largest (the busiest step) a lead costs {cap['cpu_ms_per_lead']:.1f} ms of "
            f"CPU, so {cap['cores']:g} cores carry about {cap['leads_per_s']:.0f} leads/s "
            f"({cap['routed_per_s']:.0f} routed/s measured there)")


def hops(step: dict[str, Any], through: str) -> list[tuple[str, float]]:
    """Each stage's p50 hop from the previous one, up to and including ``through``; the first stage's
    hop is its time since the capture."""
    found: list[tuple[str, float]] = []
    for name, stage in (step.get("stages") or {}).items():
        block = stage.get("hop_from_previous_ms") or stage.get("observed_since_capture_ms")
        value = _p(block, "p50")
        if value is not None:
            found.append((name, value))
        if name == through:
            break
    return found


def queue_reason(step: dict[str, Any], through: str) -> str | None:
    found = hops(step, through)
    if not found:
        return None
    name, slowest = max(found, key=lambda item: item[1])
    cells = ", ".join(f"{stage} {value:.0f}" for stage, value in found)
    return (f"at {_rate(step)} the slowest hop is the one into '{name}' ({slowest:.0f} ms p50; "
            f"hops p50 in ms: {cells})")


def trend_reason(step: dict[str, Any]) -> str | None:
    trend = step.get("end_latency_trend_ms") or {}
    first, last = trend.get("first_third_p50"), trend.get("last_third_p50")
    offered, routed = step.get("offered_rate"), step.get("achieved_routed_rate")
    if offered is None or first is None or last is None:
        return None
    if step.get("sustained") and last < 1.5 * first:
        return None
    return (f"at {_rate(step)} {routed or 0:.0f} leads/s were routed of {offered:g} offered, and the p50 "
            f"grew from {first:.0f} to {last:.0f} ms within the step: a queue, not a steady state")


def profile_reason(result: dict[str, Any]) -> str | None:
    prof = result.get("profile") or {}
    lines = []
    for service, summary in (prof.get("services") or {}).items():
        if "samples" not in summary:
            continue
        packages = [(name, pct) for name, pct in summary.get("inclusive_pct_by_package", [])
                    if name not in _FRAME_PACKAGES and name != f"leadflow_{service}"]
        cells = ", ".join(f"{name} {pct:.0f} %" for name, pct in packages[:5])
        lines.append(f"py-spy on {service} at {prof.get('rate'):g} leads/s: {cells} of its samples")
    return "; ".join(lines) or None


def floor_reason(step: dict[str, Any], floor_step: dict[str, Any] | None) -> str | None:
    if floor_step is None:
        return None
    ours = dict(hops(step, "routed"))
    theirs = dict(hops(floor_step, "routed"))
    shared = [name for name in ours if name in theirs]
    if not shared:
        return None
    cells = ", ".join(f"{name} {ours[name]:.1f}/{theirs[name]:.1f}" for name in shared)
    return (f"at {_rate(step)} hop p50 ours/floor in ms: {cells}; each of our hops is a database "
            "transaction (inbox claim, the handler's statements, the outbox row, a commit) and the "
            "outbox relay's own before Kafka, where the floor's is a bare consume and produce")


def judge(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per target: met or not, missed by what factor, and the run's reasons."""
    pipeline = measured(result.get("pipeline", []))
    floor = {s["step"]: s for s in result.get("floor", [])}
    multiples = result.get("floor_multiples", {})
    cores = result["machine"]["cores"]
    at_target = next((s for s in pipeline if s.get("offered_rate") == TARGET_RATE), None)
    general = [r for r in (capacity_reason(result), profile_reason(result)) if r]
    verdicts = []

    if at_target is None:
        absent = [f"no {TARGET_RATE:g} leads/s step in this run (--rates)"]
        load_why = absent
        p50 = p99 = multiple = None
    else:
        p50 = _p(at_target["capture_to_routed_ms"], "p50")
        p99 = _p(at_target["capture_to_routed_ms"], "p99")
        multiple = multiples.get(at_target["step"], {}).get("multiple_p50")
        load_why = [r for r in (cpu_reason(at_target, cores), trend_reason(at_target),
                                queue_reason(at_target, "routed")) if r] + general
    verdicts.append(_verdict(f"capture->routed p50 at {TARGET_RATE:g} leads/s <= {ROUTED_P50_MS:g} ms",
                             p50, "ms", ROUTED_P50_MS, at_most=True, why=load_why))
    verdicts.append(_verdict(f"capture->routed p99 at {TARGET_RATE:g} leads/s <= {ROUTED_P99_MS:g} ms",
                             p99, "ms", ROUTED_P99_MS, at_most=True, why=load_why))

    floor_why = list(load_why) if at_target is not None else list(absent)
    if not floor:
        floor_why.insert(0, "no floor in this run (--skip-floor)")
    ranked = sorted(((m["multiple_p50"], name) for name, m in multiples.items()
                     if m.get("multiple_p50") is not None and name != "max"))
    if ranked:
        best, name = ranked[0]
        step = next(s for s in pipeline if s["step"] == name)
        floor_why.insert(0, f"nearest at {_rate(step)}: {best:g}x the floor "
                            f"({multiples[name]['ours_p50_ms']:.1f} vs. {multiples[name]['floor_p50_ms']:.1f} ms p50)")
        reason = floor_reason(step, floor.get(name))
        if reason:
            floor_why.insert(1, reason)
    verdicts.append(_verdict(f"p50 within {FLOOR_MULTIPLE:g}x the floor at {TARGET_RATE:g} leads/s",
                             multiple, "x", FLOOR_MULTIPLE, at_most=True, why=floor_why))

    kept = [s for s in pipeline if s.get("offered_rate") is not None and s.get("sustained")
            and (_webhook_p99(s) or float("inf")) <= WEBHOOK_P99_MS]
    best_rate = max((s["offered_rate"] for s in kept), default=None)
    rate_why = [r for r in (capacity_reason(result),) if r]
    above = [s for s in pipeline if s.get("offered_rate") is not None and s["offered_rate"] > (best_rate or 0)]
    if above:
        first = above[0]
        webhook_p99 = _webhook_p99(first)
        routed = first.get("achieved_routed_rate") or 0.0
        kept_up = "kept up" if first.get("sustained") else f"was not sustained ({routed:.0f} routed/s)"
        rate_why.append(f"the next step, {_rate(first)}, {kept_up}, with a capture->webhook p99 of "
                        f"{webhook_p99 or 0:.0f} ms")
        rate_why += [r for r in (cpu_reason(first, cores), queue_reason(first, "delivered")) if r]
    rate_why += [r for r in (profile_reason(result),) if r]
    verdicts.append(_verdict(f">= {SUSTAINED_RATE:g} leads/s sustained with p99 capture->webhook <= "
                             f"{WEBHOOK_P99_MS / 1000:g} s", best_rate, "leads/s", SUSTAINED_RATE,
                             at_most=False, why=rate_why))
    return verdicts
