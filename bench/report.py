"""The benchmark's outputs: tables on stdout, one JSON document, a PNG of latency against rate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _pct(block: dict[str, Any] | None, key: str) -> Any:
    return None if not block else block.get(key)


def measured(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in steps if not s.get("skipped")]


# The benchmark's own processes: on the machine's CPU, but not the product's.
BENCH_PROCESSES = ("loadgen", "observer")


def product_cpu_ms_per_lead(step: dict[str, Any]) -> float | None:
    """CPU per lead of everything the system under test runs (services or relays, Kafka, PostgreSQL
    with its backends), without the generator and the observer."""
    resources = step.get("resources") or {}
    ours = [r["cpu_ms_per_lead"] for name, r in resources.items()
            if not name.startswith("_") and name not in BENCH_PROCESSES]
    return round(sum(ours), 2) if ours else None


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 2) if ours and theirs else None


def floor_multiples(pipeline: list[dict[str, Any]], floor: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per step name: our capture->routed p50 and p99 (as the observer saw them) and our CPU per lead,
    each over the floor's at the same step."""
    pipeline = measured(pipeline)
    by_name = {s["step"]: s for s in floor}
    out: dict[str, dict[str, Any]] = {}
    for step in pipeline:
        base = by_name.get(step["step"])
        if base is None:
            continue
        ours = _pct(step["capture_to_routed_observed_ms"], "p50")
        theirs = _pct(base["capture_to_routed_observed_ms"], "p50")
        ours99 = _pct(step["capture_to_routed_observed_ms"], "p99")
        theirs99 = _pct(base["capture_to_routed_observed_ms"], "p99")
        ours_cpu, floor_cpu = product_cpu_ms_per_lead(step), product_cpu_ms_per_lead(base)
        out[step["step"]] = {
            "floor_p50_ms": theirs,
            "ours_p50_ms": ours,
            "multiple_p50": _ratio(ours, theirs),
            "floor_p99_ms": theirs99,
            "multiple_p99": _ratio(ours99, theirs99),
            "floor_cpu_ms_per_lead": floor_cpu,
            "ours_cpu_ms_per_lead": ours_cpu,
            "multiple_cpu": _ratio(ours_cpu, floor_cpu),
        }
    return out


def _floor_table(title: str, steps: list[dict[str, Any]]) -> None:
    print(f"\n{title}, latency in ms since produce; CPU ms per lead without generator and observer")
    print(f"{'step':>6} {'offer/s':>8} {'got/s':>7} {'e2e/s':>7} {'prod p50':>8} {'p99':>6} "
          f"{'end p50':>8} {'p95':>6} {'p99':>6} {'max':>6} {'lost':>5} {'cpu/lead':>8}")
    for s in steps:
        e2e = s["capture_to_routed_observed_ms"] or {}
        http = s["capture_http_ms"]
        print(f"{s['step']:>6} {_ms(s['offered_rate']):>8} {s['achieved_capture_rate']:>7} "
              f"{_ms(s['achieved_routed_rate']):>7} {_ms(http['p50']):>8} {_ms(http['p99']):>6} "
              f"{_ms(e2e.get('p50')):>8} {_ms(e2e.get('p95')):>6} {_ms(e2e.get('p99')):>6} "
              f"{_ms(e2e.get('max')):>6} {s['not_completed']:>5} {_ms(product_cpu_ms_per_lead(s)):>8}")


def _multiples_table(result: dict[str, Any], pipeline: list[dict[str, Any]]) -> None:
    transport = result.get("floor_multiples") or {}
    durable = result.get("durable_floor_multiples") or {}
    if not transport and not durable:
        return
    print("\nOURS / FLOOR at the same step: capture->routed p50 and p99 (observer arrival), CPU per lead")
    print(f"{'step':>6} {'floor p50':>9} {'p99':>5} {'durable p50':>11} {'p99':>5} {'cpu':>5}   "
          f"ours: {'cpu/lead':>8} durable: {'cpu/lead':>8}")

    def x(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}x"

    for s in pipeline:
        t, d = transport.get(s["step"], {}), durable.get(s["step"], {})
        print(f"{s['step']:>6} {x(t.get('multiple_p50')):>9} {x(t.get('multiple_p99')):>5} "
              f"{x(d.get('multiple_p50')):>11} {x(d.get('multiple_p99')):>5} {x(d.get('multiple_cpu')):>5}   "
              f"      {_ms(d.get('ours_cpu_ms_per_lead')):>8}          {_ms(d.get('floor_cpu_ms_per_lead')):>8}")


def _send_table(pipeline: list[dict[str, Any]]) -> None:
    print("\nWHAT A USER SEES: ms from the generator sending the HTTP request to the receiver having verified "
          "the webhook (new leads only; a repeat fill's email is not counted twice)")
    print(f"{'step':>6} {'secs':>5} {'leads':>6} {'verified':>8} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>6} "
          f"{'gen late':>8} {'gen gc':>6}")
    for s in pipeline:
        hook = s.get("webhook") or {}
        sent = hook.get("send_to_verified_ms") or {}
        schedule = s.get("schedule") or {}
        print(f"{s['step']:>6} {s['duration_s']:>5.0f} {s.get('new_leads', '-'):>6} {hook.get('verified', '-'):>8} "
              f"{_ms(sent.get('p50')):>6} {_ms(sent.get('p95')):>6} {_ms(sent.get('p99')):>6} "
              f"{_ms(sent.get('max')):>6} {_ms(schedule.get('generator_max_behind_ms')):>8} "
              f"{_ms((schedule.get('driver_gc') or {}).get('max_ms')):>6}")


def print_tables(result: dict[str, Any]) -> None:
    skipped = [s for s in result.get("pipeline", []) if s.get("skipped")]
    pipeline: list[dict[str, Any]] = measured(result.get("pipeline", []))
    floor: list[dict[str, Any]] = result.get("floor", [])
    multiples = result.get("floor_multiples", {})
    print()
    print(f"LeadFlow benchmark {result['run_id']}  ({result['machine']['summary']})")
    print(f"infrastructure: {result['infrastructure']}")
    if result.get("prefill"):
        fill = result["prefill"]
        took = ", ".join(f"{svc} {r['seconds']:.0f}s" if "error" not in r else f"{svc} FAILED ({r['error']})"
                         for svc, r in fill["services"].items())
        print(f"\nprefill: {fill['leads']} earlier leads in every service's tables in {fill['seconds']:.0f}s "
              f"(insert + VACUUM ANALYZE; {took})")
    if result.get("search"):
        print_search(result["search"])
    for title, steps in (
        ("FLOOR (bare aiokafka, 4 topics / 3 relays, no logic, no DB)", floor),
        ("DURABLE FLOOR (the same hops, one PostgreSQL transaction per batch: effect rows + offset row, "
         "fsync on, then the produce)", result.get("durable_floor") or []),
    ):
        if steps:
            _floor_table(title, steps)
    if pipeline:
        end = pipeline[0].get("end_stage", "routed")
        print(f"\nPIPELINE, latency in ms since the lead's capture (rout = leads.{end} ce_time; "
              "hook = arrival at the webhook receiver)")
        print(f"{'step':>6} {'offer/s':>8} {'cap/s':>6} {'rout/s':>6} {'http p50':>8} {'p95':>5} {'p99':>5} "
              f"{'rout p50':>8} {'p95':>5} {'p99':>5} {'max':>6} {'hook p50':>8} {'p95':>5} {'p99':>5} {'max':>6} "
              f"{'x floor':>7} {'err':>4} {'open':>4} {'drain':>8} {'kept up':>4}")
        for s in pipeline:
            routed = s["capture_to_routed_ms"] or {}
            http = s["capture_http_ms"]
            hook = (s.get("webhook") or {}).get("capture_to_webhook_ms") or {}
            mult = multiples.get(s["step"], {}).get("multiple_p50")
            errors = sum(s["errors"].values())
            print(f"{s['step']:>6} {_ms(s['offered_rate']):>8} {s['achieved_capture_rate']:>6} "
                  f"{_ms(s['achieved_routed_rate']):>6} {_ms(http['p50']):>8} {_ms(http['p95']):>5} "
                  f"{_ms(http['p99']):>5} {_ms(routed.get('p50')):>8} {_ms(routed.get('p95')):>5} "
                  f"{_ms(routed.get('p99')):>5} {_ms(routed.get('max')):>6} {_ms(hook.get('p50')):>8} "
                  f"{_ms(hook.get('p95')):>5} {_ms(hook.get('p99')):>5} {_ms(hook.get('max')):>6} "
                  f"{'-' if mult is None else f'{mult:.1f}x':>7} {errors:>4} {s['not_completed']:>4} "
                  f"{s['drain_end']:>8} {'yes' if s.get('sustained') else 'NO':>4}")
        _send_table(pipeline)
        _multiples_table(result, pipeline)
        print("\nper stage: hop p50 / p99 ms (observer arrival after the previous stage's arrival)")
        stages = list(pipeline[0]["stages"])
        print(f"{'step':>6} " + " ".join(f"{name:>15}" for name in stages))
        for s in pipeline:
            cells = []
            for name in stages:
                hop = s["stages"][name]["hop_from_previous_ms"] or s["stages"][name]["observed_since_capture_ms"]
                cells.append(f"{_ms(hop.get('p50'))}/{_ms(hop.get('p99'))}")
            print(f"{s['step']:>6} " + " ".join(f"{c:>15}" for c in cells))
        print("\nCPU (cores used) / peak RSS (MB) per process, over each step and its drain")
        names = sorted({n for s in pipeline for n in s["resources"]})
        print(f"{'step':>6} " + " ".join(f"{n:>14}" for n in names))
        for s in pipeline:
            cells = []
            for n in names:
                r = s["resources"].get(n)
                cells.append("-" if r is None else f"{r['cpu_cores']:.2f}/{r['rss_max_mb']:.0f}")
            print(f"{s['step']:>6} " + " ".join(f"{c:>14}" for c in cells))
        idle = result.get("idle_resources") or {}
        if idle:
            cells = [f"{n} {idle[n]['cpu_cores']:.2f}" for n in names if n in idle]
            print("\nidle (10 s, no load), cores: " + ", ".join(cells))
        print("\nCPU ms per lead (activities included; 'system' = all but the generator and the observer)")
        print(f"{'step':>6} " + " ".join(f"{n:>14}" for n in names) + f" {'system':>8}")
        for s in pipeline:
            cells = ["-" if s["resources"].get(n) is None else f"{s['resources'][n]['cpu_ms_per_lead']:.1f}"
                     for n in names]
            print(f"{s['step']:>6} " + " ".join(f"{c:>14}" for c in cells)
                  + f" {_ms(product_cpu_ms_per_lead(s)):>8}")
        if any("cpu_ms_per_lead_by_kind" in (s["resources"].get("postgres") or {}) for s in pipeline):
            print("\nPostgreSQL's CPU ms per lead by process (a service's backends, then the server's own work)")
            for s in pipeline:
                kinds = (s["resources"].get("postgres") or {}).get("cpu_ms_per_lead_by_kind") or {}
                print(f"{s['step']:>6}  " + ", ".join(f"{kind} {ms:.2f}" for kind, ms in kinds.items()))
        print("\nPostgreSQL connections per service, average count by state (idle left out)")
        for s in pipeline:
            conns = s.get("db_connections") or {}
            cells = [f"{svc}: " + ", ".join(f"{k} {v}" for k, v in states.items()) for svc, states in conns.items()]
            print(f"{s['step']:>6}  " + " | ".join(cells))
        if any(s.get("db_statements") for s in pipeline):
            print("\nSQL statements per lead by service (pg_stat_statements; BEGIN and COMMIT included)")
            for s in pipeline:
                counts = s.get("db_statements") or {}
                print(f"{s['step']:>6}  " + "  ".join(f"{svc} {c['per_lead']}" for svc, c in counts.items()))
            last = next(s for s in reversed(pipeline) if s.get("db_statements"))
            print(f"  most frequent at step {last['step']}:")
            for svc, counts in last["db_statements"].items():
                for row in counts["top"]:
                    print(f"    {svc:<11} {row['calls']:>7}  {row['query']}")
            print(f"  most database time at step {last['step']} (calls, ms):")
            for svc, counts in last["db_statements"].items():
                for row in counts.get("most_time", []):
                    print(f"    {svc:<11} {row['calls']:>7} {row['exec_ms']:>8}  {row['query']}")
        for s in skipped:
            print(f"step {s['step']}: {s['skipped']}")
        errs = {s["step"]: s["errors"] for s in pipeline if s["errors"]}
        if errs:
            print(f"\nerrors: {errs}")
    if result.get("verdicts"):
        print("\nTARGETS")
        said: set[str] = set()
        for v in result["verdicts"]:
            value = "-" if v["measured"] is None else f"{v['measured']:g} {v['unit']}"
            missed = f", missed by {v['missed_by']:g}x" if v.get("missed_by") else ""
            print(f"  [{'met' if v['met'] else 'MISSED'}] {v['target']}: measured {value}{missed}")
            fresh = [reason for reason in v.get("why", []) if reason not in said]
            for reason in fresh:
                print(f"      - {reason}")
            if len(fresh) < len(v.get("why", [])):
                print("      - and the reasons given above")
            said.update(fresh)
    prof = result.get("profile") or {}
    if result.get("elapsed_s") is not None:
        print(f"\nthe whole run took {result['elapsed_s'] / 60:.1f} min")
    for service, summary in (prof.get("services") or {}).items():
        if "samples" not in summary:
            print(f"\nPROFILE of {service}: {summary.get('error')}")
            continue
        print(f"\nPROFILE of {service} at {prof['rate']} leads/s ({summary['samples']} samples, "
              f"on CPU or runnable {summary['busy_pct']}% of the time)")
        print("  inclusive by package: " + ", ".join(f"{n} {p}%" for n, p in summary["inclusive_pct_by_package"][:10]))
        print("  self by function:     " + ", ".join(f"{n} {p}%" for n, p in summary["self_pct_by_function"][:8]))
    print()


def print_search(found: dict[str, Any]) -> None:
    overall = found["latency_ms"]
    print(f"\nLEAD SEARCH (GET /v1/leads on sla, one query at a time, over {found['prefilled_leads']:,} leads): "
          f"{found['queries']} queries, p50 {overall['p50']} / p95 {overall['p95']} / p99 {overall['p99']} ms"
          + (f"; not 200: {found['errors']}" if found["errors"] else ""))
    for kind, figures in found["by_kind_ms"].items():
        print(f"  {kind:<26} n {figures['n']:>4}  p50 {figures['p50']:>6}  p95 {figures['p95']:>6}  "
              f"p99 {figures['p99']:>6} ms")


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


def plot(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    pipeline = [s for s in measured(result.get("pipeline", [])) if s.get("offered_rate")]
    floor = [s for s in result.get("floor", []) if s.get("offered_rate")]
    durable = [s for s in result.get("durable_floor", []) if s.get("offered_rate")]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5))

    def series(
        steps: list[dict[str, Any]], key: str, pct: str, sub: str | None = None
    ) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for s in steps:
            block = (s.get(sub) or {}).get(key) if sub else s.get(key)
            value = _pct(block, pct)
            if value is not None:
                xs.append(s["offered_rate"])
                ys.append(value)
        return xs, ys

    for label, steps, key, sub, color in (
        ("capture->routed", pipeline, "capture_to_routed_ms", None, "tab:blue"),
        ("capture->webhook", pipeline, "capture_to_webhook_ms", "webhook", "tab:orange"),
        ("send->webhook verified", pipeline, "send_to_verified_ms", "webhook", "tab:red"),
        ("floor (4 hops, bare Kafka)", floor, "capture_to_routed_observed_ms", None, "tab:gray"),
        ("durable floor (4 hops, 1 txn/batch)", durable, "capture_to_routed_observed_ms", None, "tab:brown"),
        ("capture HTTP", pipeline, "capture_http_ms", None, "tab:green"),
    ):
        for pct, style in (("p50", "-o"), ("p99", "--^")):
            xs, ys = series(steps, key, pct, sub)
            if xs:
                ax.plot(xs, ys, style, color=color, label=f"{label} {pct}")
    ax.axhline(25, color="tab:red", lw=0.6, ls=":")
    ax.axhline(150, color="tab:red", lw=0.6, ls=":")
    ax.axhline(1000, color="tab:orange", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered leads/s (open loop)")
    ax.set_ylabel("latency, ms")
    ax.set_title("latency vs. rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    xs = [s["offered_rate"] for s in pipeline]
    ax2.plot(xs, xs, ":", color="black", label="offered")
    ax2.plot(xs, [s["achieved_capture_rate"] for s in pipeline], "-o", label="captured/s")
    ax2.plot(xs, [s["achieved_routed_rate"] or 0 for s in pipeline], "-s", label="routed/s")
    if floor:
        ax2.plot([s["offered_rate"] for s in floor], [s["achieved_routed_rate"] or 0 for s in floor], "-^",
                 color="tab:gray", label="floor end-to-end/s")
    ax2.set_xlabel("offered leads/s")
    ax2.set_ylabel("achieved leads/s")
    ax2.set_title("throughput")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7)
    fig.suptitle(f"LeadFlow bench {result['run_id']} — {result['machine']['summary']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
