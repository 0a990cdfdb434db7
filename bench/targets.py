"""The issue's targets judged against one run: what was measured, by how much a target is missed,
and why. Every reason is read from the same run's figures (CPU per process, the hops, the floor,
the profile), so the report explains the run it belongs to, not a run from last week."""

from __future__ import annotations

from typing import Any

from bench.report import BENCH_PROCESSES, measured, product_cpu_ms_per_lead

TARGET_RATE = 100.0  # leads/s at which the latency targets hold
SEND_P50_MS = 25.0  # send -> webhook verified
SEND_P99_MS = 150.0
SEARCH_P95_MS = 50.0  # GET /v1/leads over the prefill's leads (a million in `make bench`)
SUSTAINED_RATE = 400.0
SUSTAINED_SECONDS = 60.0
WEBHOOK_P99_MS = 1000.0
CPU_MS_PER_LEAD = 4.0  # at the saturation step, every process of the system (PostgreSQL included)
FLOOR_MULTIPLE = 2.0  # of the durable floor: p50 at the target rate, CPU per lead at saturation
# Past this share of the machine's cores, waiting for a CPU, not work, sets the latency.
SATURATED_SHARE = 0.85
# Packages every service's profile is mostly "inside" (the event loop, the server, the kit): saying
# so explains nothing.
_FRAME_PACKAGES = {"asyncio", "python", "uvicorn", "contextlib", "leadflow_kit", "weakref", "uvloop"}


def _p(block: dict[str, Any] | None, key: str) -> float | None:
    return None if not block else block.get(key)


def _webhook_p99(step: dict[str, Any]) -> float | None:
    """send -> webhook verified p99 (what a user sees)."""
    return _p((step.get("webhook") or {}).get("send_to_verified_ms"), "p99")


def _sent(step: dict[str, Any], key: str) -> float | None:
    return _p((step.get("webhook") or {}).get("send_to_verified_ms"), key)


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
    return (f"at {_rate(step)} hop p50 ours/durable floor in ms: {cells}; the durable floor's hop is one "
            "transaction per batch (effect rows, offset row, a commit) and a produce, so what ours spends "
            "beyond it is statements, round trips and Python per event")


def _missing_completion(step: dict[str, Any]) -> list[str]:
    """What kept a step from counting as 'sustained, every lead routed and its webhook verified'."""
    hook = step.get("webhook") or {}
    leads, verified = step.get("new_leads", 0), hook.get("verified", 0)
    found = []
    if step.get("duration_s", 0.0) < SUSTAINED_SECONDS - 1:
        found.append(f"it ran {step.get('duration_s', 0.0):.0f} s, not {SUSTAINED_SECONDS:g}")
    if not step.get("sustained"):
        found.append(f"it was not sustained ({step.get('achieved_routed_rate') or 0:.0f} routed/s)")
    if verified < leads:
        found.append(f"{leads - verified} of its {leads} leads had no verified webhook")
    p99 = _webhook_p99(step)
    if p99 is None or p99 > WEBHOOK_P99_MS:
        found.append(f"its send->webhook p99 was {p99 or 0:.0f} ms")
    return found


def _kept(step: dict[str, Any]) -> bool:
    return step.get("offered_rate") is not None and not _missing_completion(step)


def _sustained_verdict(result: dict[str, Any], pipeline: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    long_enough = [s for s in pipeline if s.get("offered_rate") is not None]
    best_rate = max((s["offered_rate"] for s in long_enough if _kept(s)), default=None)
    why = [r for r in (capacity_reason(result),) if r]
    # The step that should have met it: the first at the target's rate that did not, else the next above.
    missed = [s for s in long_enough if s["offered_rate"] >= SUSTAINED_RATE and not _kept(s)]
    above = missed or [s for s in long_enough if s["offered_rate"] > (best_rate or 0)]
    if above:
        first = above[0]
        why.append(f"the step at {_rate(first)}: " + "; ".join(_missing_completion(first)))
        why += [r for r in (cpu_reason(first, cores), queue_reason(first, "delivered")) if r]
    elif best_rate is None or best_rate < SUSTAINED_RATE:
        why.insert(0, f"no step at {SUSTAINED_RATE:g} leads/s or more in this run (--rates)")
    why += [r for r in (profile_reason(result),) if r]
    return _verdict(f">= {SUSTAINED_RATE:g} leads/s sustained for {SUSTAINED_SECONDS:g} s, every lead's webhook "
                    f"verified, p99 send->webhook <= {WEBHOOK_P99_MS / 1000:g} s", best_rate, "leads/s",
                    SUSTAINED_RATE, at_most=False, why=why)


def saturation_step(pipeline: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The 'max' step, else the busiest fixed rate."""
    return next((s for s in pipeline if s.get("offered_rate") is None), None) or (pipeline[-1] if pipeline else None)


def _cpu_verdict(pipeline: list[dict[str, Any]], cores: int) -> dict[str, Any]:
    step = saturation_step(pipeline)
    value = product_cpu_ms_per_lead(step) if step else None
    why = [cpu_reason(step, cores)] if step else ["no step in this run"]
    if step:
        bench_ms = sum(step["resources"][n]["cpu_ms_per_lead"] for n in BENCH_PROCESSES if n in step["resources"])
        why.append(f"the generator and the observer took {bench_ms:.1f} ms per lead more (not counted)")
    return _verdict(f"CPU per lead at the saturation step <= {CPU_MS_PER_LEAD:g} ms (all processes of the system)",
                    value, "ms", CPU_MS_PER_LEAD, at_most=True, why=why)


def _durable_verdicts(result: dict[str, Any], pipeline: list[dict[str, Any]],
                      load_why: list[str]) -> list[dict[str, Any]]:
    multiples = result.get("durable_floor_multiples") or {}
    floor = {s["step"]: s for s in result.get("durable_floor") or []}
    absent = [] if floor else ["no durable floor in this run (--skip-floor)"]
    at_target = multiples.get(f"{TARGET_RATE:g}", {})
    p50_why = absent + [f"{m['multiple_p50']:g}x at {name} ({m['ours_p50_ms']:.1f} vs. {m['floor_p50_ms']:.1f} ms "
                        "p50 capture->routed)" for name, m in multiples.items() if m.get("multiple_p50")]
    step = next((s for s in pipeline if s.get("offered_rate") == TARGET_RATE), None)
    reason = floor_reason(step, floor.get(step["step"])) if step else None
    p50_why += ([reason] if reason else []) + load_why
    # CPU at the same offered load (the same batch sizes arrive): the highest rate ours carried, else the
    # target rate. The 'max' steps are left out: each floor saturates at a rate many times ours.
    carried = [s["step"] for s in pipeline if s.get("offered_rate") is not None and s.get("sustained")
               and s["step"] in multiples]
    cpu_step = carried[-1] if carried else f"{TARGET_RATE:g}"
    cpu_why = absent + [f"{m['multiple_cpu']:g}x at {name} ({m['ours_cpu_ms_per_lead']:.1f} vs. "
                        f"{m['floor_cpu_ms_per_lead']:.1f} ms)" for name, m in multiples.items()
                        if m.get("multiple_cpu")]
    return [
        _verdict(f"p50 capture->routed at {TARGET_RATE:g} leads/s <= {FLOOR_MULTIPLE:g}x the durable floor's",
                 at_target.get("multiple_p50"), "x", FLOOR_MULTIPLE, at_most=True, why=p50_why),
        _verdict(f"CPU per lead <= {FLOOR_MULTIPLE:g}x the durable floor's at the highest rate carried "
                 f"(else {TARGET_RATE:g} leads/s); here {cpu_step}", multiples.get(cpu_step, {}).get("multiple_cpu"),
                 "x", FLOOR_MULTIPLE, at_most=True, why=cpu_why),
    ]


def judge(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per target: met or not, missed by what factor, and the run's reasons."""
    pipeline = measured(result.get("pipeline", []))
    cores = result["machine"]["cores"]
    at_target = next((s for s in pipeline if s.get("offered_rate") == TARGET_RATE), None)
    general = [r for r in (capacity_reason(result), profile_reason(result)) if r]
    if at_target is None:
        load_why = [f"no {TARGET_RATE:g} leads/s step in this run (--rates)"]
        p50 = p99 = None
    else:
        p50, p99 = _sent(at_target, "p50"), _sent(at_target, "p99")
        load_why = [r for r in (cpu_reason(at_target, cores), trend_reason(at_target),
                                queue_reason(at_target, "delivered")) if r] + general
    return [
        _sustained_verdict(result, pipeline, cores),
        _verdict(f"send->webhook verified p50 at {TARGET_RATE:g} leads/s <= {SEND_P50_MS:g} ms",
                 p50, "ms", SEND_P50_MS, at_most=True, why=load_why),
        _verdict(f"send->webhook verified p99 at {TARGET_RATE:g} leads/s <= {SEND_P99_MS:g} ms",
                 p99, "ms", SEND_P99_MS, at_most=True, why=load_why),
        _cpu_verdict(pipeline, cores),
        *_durable_verdicts(result, pipeline, load_why),
        *_search_verdicts(result),
    ]


def _search_verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The lead search's p95, when the run searched; the slowest kinds of query are the reasons."""
    found = result.get("search")
    if not found:
        return []
    leads = found["prefilled_leads"]
    by_kind = sorted(((kind, figures["p95"]) for kind, figures in found["by_kind_ms"].items()
                      if figures["p95"] is not None), key=lambda item: -item[1])
    why = ["slowest p95 by kind of query in ms: " + ", ".join(f"{kind} {p95:g}" for kind, p95 in by_kind[:4])]
    if found["errors"]:
        why.append(f"answers other than 200: {found['errors']}")
    return [_verdict(f"lead search (GET /v1/leads) p95 <= {SEARCH_P95_MS:g} ms over {leads:,} leads",
                     found["latency_ms"]["p95"], "ms", SEARCH_P95_MS, at_most=True, why=why)]
