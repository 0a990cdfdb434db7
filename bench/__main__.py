"""``uv run python -m bench``: the floor, then the pipeline, at the same fixed rates; a report.

Every knob has an environment variable (for `make bench BENCH_RATES=...`) and a flag:

    BENCH_RATES=25,100,200,400      open-loop steps, leads/s
    BENCH_DURATION=10               seconds per step, at least (see BENCH_MIN_LEADS, BENCH_LONG_SECONDS)
    BENCH_MIN_LEADS=2000            a fixed-rate step lasts long enough for this many leads (a p99)
    BENCH_LONG_SECONDS=60           steps from 100 leads/s on last at least this long (--quick: 0 and 0)
    BENCH_MAX_SECONDS=30            the saturation step ('max'); 0 leaves it out
    BENCH_ALWAYS_UP_TO=400          steps up to this rate run even when a lower one was not sustained
    BENCH_PREFILL=1000000           earlier leads written into every service's tables first; 0 = none
    BENCH_WARMUP_SECONDS=20         unmeasured load before the floor and before the pipeline
    BENCH_MAX_CONCURRENCY=64        requests outstanding during 'max'
    BENCH_ACTIVITY_SHARE=0.2        activities posted per form fill
    BENCH_DUPLICATE_SHARE=0.08      form fills that repeat an earlier person
    BENCH_PROFILE=auto              py-spy the busiest service (auto), a named one, or none
    BENCH_SEARCH_ROUNDS=100         rounds of the lead search mix against sla after the prefill; 0 = none
    BENCH_OUT=.bench                where the JSON, PNG and logs go

This is a terminal entrypoint: its stdout is the report, so it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import math
import os
import platform
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import children, prefill, profile, report, search, targets
from bench.analysis import ObservationTail
from bench.floor import PAYLOAD_BYTES, STAGES, FloorSource, floor_topics
from bench.loadgen import CaptureLoad, FormFillFactory
from bench.resources import DbWaitSampler, ResourceMonitor, StatementCounter, postgres_kind
from bench.stackctl import BenchStack
from bench.steps import (
    LONG_STEP_RATE,
    LONG_STEP_SECONDS,
    MIN_LEADS_PER_STEP,
    FloorLoad,
    Step,
    run_step,
    step_duration,
)
from leadflow_stack.services import DEV_ADMIN_API_KEY, SERVICE_NAMES

log = logging.getLogger("bench")

PIPELINE_STAGES = (*STAGES, "delivered")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="LeadFlow speed and capacity benchmark")
    parser.add_argument("--rates", default=_env("BENCH_RATES", "25,100,200,400"))
    parser.add_argument("--duration", type=float, default=float(_env("BENCH_DURATION", "10")))
    parser.add_argument("--min-leads", type=int, default=int(_env("BENCH_MIN_LEADS", str(MIN_LEADS_PER_STEP))),
                        help="a fixed-rate step lasts long enough for this many leads")
    parser.add_argument("--long-seconds", type=float,
                        default=float(_env("BENCH_LONG_SECONDS", f"{LONG_STEP_SECONDS:g}")),
                        help=f"steps from {LONG_STEP_RATE:g} leads/s on last at least this long")
    parser.add_argument("--quick", action="store_true",
                        help="a quick look: steps of --duration exactly (--min-leads 0 --long-seconds 0)")
    parser.add_argument("--prefill", type=int, default=int(_env("BENCH_PREFILL", "1000000")),
                        help="earlier leads written into every service's tables before the steps; 0 = none")
    parser.add_argument("--max-seconds", type=float, default=float(_env("BENCH_MAX_SECONDS", "30")))
    parser.add_argument("--warmup-seconds", type=float, default=float(_env("BENCH_WARMUP_SECONDS", "20")))
    parser.add_argument("--max-concurrency", type=int, default=int(_env("BENCH_MAX_CONCURRENCY", "64")))
    parser.add_argument("--activity-share", type=float, default=float(_env("BENCH_ACTIVITY_SHARE", "0.2")))
    parser.add_argument("--duplicate-share", type=float, default=float(_env("BENCH_DUPLICATE_SHARE", "0.08")))
    parser.add_argument("--search-rounds", type=int, default=int(_env("BENCH_SEARCH_ROUNDS", "100")),
                        help="rounds of the lead search mix (GET /v1/leads on sla) after the prefill; 0 = none")
    parser.add_argument("--profile", default=_env("BENCH_PROFILE", "auto"),
                        help="auto | none | capture | enrichment | scoring | routing | sla")
    parser.add_argument("--profile-rate", type=float, default=float(_env("BENCH_PROFILE_RATE", "200")))
    parser.add_argument("--out", type=Path, default=Path(_env("BENCH_OUT", ".bench")))
    parser.add_argument("--floor-only", action="store_true", help="measure the floor only (no services)")
    parser.add_argument("--skip-floor", action="store_true")
    # The targets' rates: each target is judged on a step that ran, and 'max' always comes after the same
    # steps (after a 400 leads/s step it carries the SLA warnings and breaches of the earlier steps' leads;
    # without one it did not, so runs that skipped it were not comparable).
    parser.add_argument("--always-up-to", type=float, default=float(_env("BENCH_ALWAYS_UP_TO", "400")),
                        help="rates up to this run even after a lower rate was not sustained (the targets' rates)")
    parser.add_argument("--drain-timeout", type=float, default=float(_env("BENCH_DRAIN_TIMEOUT", "60")))
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="SERVICE.NAME=VALUE",
                        help="a setting for one service's process, e.g. routing.WEBHOOK_CONCURRENCY=128 "
                             "(repeatable; the name without the service's prefix)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.min_leads, args.long_seconds = 0, 0.0
    return args


def service_settings(given: list[str]) -> dict[str, dict[str, str]]:
    """``--set routing.NAME=VALUE`` options as each service's settings."""
    settings: dict[str, dict[str, str]] = {}
    for item in given:
        target, sep, value = item.partition("=")
        service, dot, name = target.partition(".")
        if not sep or not dot or not name or service not in SERVICE_NAMES:
            raise SystemExit(f"--set {item!r}: expected SERVICE.NAME=VALUE, SERVICE one of {', '.join(SERVICE_NAMES)}")
        settings.setdefault(service, {})[name.upper()] = value
    return settings


def build_steps(args: argparse.Namespace) -> list[Step]:
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    # --min-leads counts new leads: the repeat fills among the posted ones are not counted twice.
    min_fills = math.ceil(args.min_leads / max(1.0 - args.duplicate_share, 0.01))
    steps = [Step(f"{rate:g}", rate, step_duration(rate, args.duration, min_leads=min_fills,
                                                    long_seconds=args.long_seconds)) for rate in rates]
    if args.max_seconds > 0:
        steps.append(Step("max", None, args.max_seconds, args.max_concurrency))
    return steps


def machine_info() -> dict[str, Any]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = psutil.virtual_memory().total / 2**30
    cores = psutil.cpu_count() or 0
    load = os.getloadavg()
    return {
        "summary": f"{cores} cores {model}, {mem:.0f} GiB, {platform.system()} {platform.release()}, "
                   f"Python {platform.python_version()}",
        "cpu_model": model,
        "cores": cores,
        "memory_gib": round(mem, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def _tmp_workdir(run_id: str) -> Path:
    # Not under the repo: a private PostgreSQL runs as the postgres OS user and must reach it.
    base = Path(tempfile.gettempdir()) / f"leadflow-bench-{os.getuid()}"
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    work = base / run_id
    work.mkdir()
    work.chmod(0o755)
    return work


async def run_floor(
    stack: BenchStack, steps: list[Step], workdir: Path, args: argparse.Namespace, *, durable: bool = False
) -> list[dict[str, Any]]:
    """The transport floor (bare consume and produce), or with ``durable`` one PostgreSQL transaction
    per batch in every relay (its own database, as each service has)."""
    kind = "durable" if durable else "floor"
    prefix = f"bench-{kind}-{stack.run_id}."
    topics = floor_topics(prefix)
    await stack.create_topics(list(topics.values()))
    relays: list[children.Child] = []
    observer: children.Child | None = None
    source = FloorSource(stack.bootstrap_servers, topics["captured"])
    results: list[dict[str, Any]] = []
    try:
        for i in range(len(STAGES) - 1):
            database = (["--dsn", await stack.create_database(f"bench_{stack.run_id}_{kind}{i + 1}")]
                        if durable else [])
            relays.append(await children.spawn(
                f"relay{i + 1}", "bench.floor", "--bootstrap", stack.bootstrap_servers,
                "--src", topics[STAGES[i]], "--dst", topics[STAGES[i + 1]], "--group", f"{prefix}relay{i + 1}",
                "--payload-bytes", str(PAYLOAD_BYTES[STAGES[i + 1]]), *database,
                log_path=str(workdir / f"{kind}-relay{i + 1}.log"),
            ))
        obs_file = workdir / f"{kind}-observations.jsonl"
        observer = await children.spawn(
            "observer", "bench.observer", "--bootstrap", stack.bootstrap_servers, "--out", str(obs_file),
            *[a for stage, topic in topics.items() for a in ("--topic", f"{stage}={topic}")],
            log_path=str(workdir / f"{kind}-observer.log"),
        )
        await source.start()
        tail = ObservationTail(obs_file)
        monitor = ResourceMonitor()
        for relay in relays:
            monitor.add(f"{kind}-{relay.name}", relay.pid)
        monitor.add("observer", observer.pid)
        monitor.add("loadgen", os.getpid())
        for name, pid in stack.infra_pids().items():
            if name == "kafka" or durable:
                monitor.add(name, pid, with_children=name == "postgres")
        load = FloorLoad(source)
        # Warm-up: connections, metadata and group assignments settle, and the broker's JIT compiles its
        # hot paths (it spent 0.4 cores on 10 leads/s in its first minute, half that two minutes later).
        await run_step(Step("warmup", 50, args.warmup_seconds), load, tail, monitor, STAGES, with_webhooks=False,
                       drain_timeout=15)
        for step in steps:
            label = "durable" if durable else "transport"
            print(f"{label} floor step {step.name} ({step.duration:g}s) ...", file=sys.stderr, flush=True)
            results.append(await run_step(step, load, tail, monitor, STAGES, with_webhooks=False,
                                          drain_timeout=args.drain_timeout))
            await asyncio.sleep(1)
    finally:
        await source.stop()
        for child in [*relays, *([observer] if observer else [])]:
            await child.stop()
    return results


async def run_pipeline(
    stack: BenchStack, steps: list[Step], workdir: Path, args: argparse.Namespace, result: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any]]:
    await stack.create_pipeline_topics()
    obs_file = workdir / "observations.jsonl"
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    observer = await children.spawn(
        "observer", "bench.observer", "--bootstrap", stack.bootstrap_servers, "--out", str(obs_file),
        *[a for stage in PIPELINE_STAGES for a in ("--topic", f"{stage}={stack.topic(f'leads.{stage}')}")],
        "--webhook-port", "0", "--webhook-secret", secret,
        log_path=str(workdir / "observer.log"),
    )
    results: list[dict[str, Any]] = []
    profiled: dict[str, Any] | None = None
    idle: dict[str, Any] = {}
    load: CaptureLoad | None = None
    try:
        port = int(observer.ready_line.split()[1])
        print("starting the services ...", file=sys.stderr, flush=True)
        missing = await stack.start_services(f"http://127.0.0.1:{port}/crm/leads", secret,
                                             service_settings(args.settings))
        # Until every service exists, measure as far as the chain reaches (capture -> ... -> X).
        producers = {"captured": "capture", "enriched": "enrichment", "scored": "scoring", "routed": "routing"}
        reach = [stage for stage in STAGES if producers[stage] not in missing]
        end_stage = STAGES[0]
        for stage in STAGES:
            if stage not in reach:
                break
            end_stage = stage
        with_webhooks = end_stage == "routed"
        if missing:
            print(f"services not written yet: {', '.join(missing)}; measuring capture -> {end_stage}",
                  file=sys.stderr, flush=True)
        if args.prefill > 0:
            print(f"pre-filling every service's tables with {args.prefill} leads ...", file=sys.stderr, flush=True)
            result["prefill"] = await prefill.prefill(stack.service_dsns(), args.prefill)
            print(f"pre-filled in {result['prefill']['seconds']:.0f}s", file=sys.stderr, flush=True)
        if args.search_rounds > 0 and "sla" not in missing:
            print(f"lead search: {args.search_rounds} rounds of the query mix ...", file=sys.stderr, flush=True)
            result["search"] = await search.run(stack.url("sla"), DEV_ADMIN_API_KEY, args.prefill, args.search_rounds)
        tail = ObservationTail(obs_file)
        monitor = ResourceMonitor()
        for name, pid in stack.service_pids().items():
            monitor.add(name, pid)
        for name, pid in stack.infra_pids().items():
            if name == "postgres":
                monitor.add(name, pid, with_children=True, kind=postgres_kind(stack.database_of_service()))
            else:
                monitor.add(name, pid)
        monitor.add("observer", observer.pid)
        monitor.add("loadgen", os.getpid())
        factory = FormFillFactory(stack.run_id, duplicate_share=args.duplicate_share)
        load = CaptureLoad(stack.url("capture"), "demo", factory, args.activity_share, DEV_ADMIN_API_KEY)
        db_waits = DbWaitSampler(stack.admin_dsn(), stack.database_of_service())
        statements = StatementCounter(stack.admin_dsn(), stack.database_of_service())
        warm = await run_step(Step("warmup", 25, args.warmup_seconds), load, tail, monitor, PIPELINE_STAGES,
                              end_stage=end_stage, with_webhooks=with_webhooks, drain_timeout=30)
        if warm["routed"] == 0:
            raise RuntimeError(f"no lead reached {end_stage} during the warm-up: {warm['errors'] or warm}; "
                               f"logs in {workdir / 'logs'}")
        # What the stack costs doing nothing: pollers, fetchers, schedulers. Every step pays it.
        await asyncio.sleep(3)
        monitor.start()
        await asyncio.sleep(10)
        idle = await monitor.stop()
        fixed = [s for s in steps if s.rate is not None]
        saturating = [s for s in steps if s.rate is None]
        for index, step in enumerate(fixed):
            print(f"pipeline step {step.name} ({step.duration:g}s) ...", file=sys.stderr, flush=True)
            result = await run_step(step, load, tail, monitor, PIPELINE_STAGES, end_stage=end_stage,
                                    with_webhooks=with_webhooks, drain_timeout=args.drain_timeout,
                                    db_waits=db_waits, statements=statements)
            result["end_stage"] = end_stage
            results.append(result)
            if not result["sustained"]:
                # Let the backlog clear so the next step measures the pipeline, not this queue.
                await wait_drained(tail, result, end_stage, args.drain_timeout * 3)
                rest = fixed[index + 1:]
                if rest and (rest[0].rate or 0) > args.always_up_to:
                    # Higher rates would only measure a longer queue.
                    for skipped in rest:
                        results.append({"step": skipped.name, "offered_rate": skipped.rate, "skipped":
                                        f"not run: {step.name} leads/s was already not sustained"})
                    break
            await asyncio.sleep(2)
        measured = [r for r in results if not r.get("skipped")]
        if args.profile != "none":
            profiled = await profile_busiest(stack, load, tail, monitor, measured, workdir, args, end_stage)
        for step in saturating:
            print(f"pipeline step {step.name} ({step.duration:g}s) ...", file=sys.stderr, flush=True)
            result = await run_step(step, load, tail, monitor, PIPELINE_STAGES, end_stage=end_stage,
                                    with_webhooks=with_webhooks, drain_timeout=args.drain_timeout,
                                    db_waits=db_waits, statements=statements)
            result["end_stage"] = end_stage
            results.append(result)
    finally:
        if load is not None:
            await load.close()
        await observer.stop()
    return results, profiled, idle


async def wait_drained(tail: ObservationTail, step: dict[str, Any], end_stage: str, timeout: float) -> None:
    """After an overloaded step, let the backlog clear so that later measurements start clean."""
    print(f"waiting up to {timeout:.0f}s for the backlog of step {step['step']} to clear ...",
          file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        obs = tail.poll()
        open_leads = sum(1 for lead in obs.events if obs.reached(lead, "captured") and not obs.reached(lead, end_stage))
        if open_leads == 0 or time.monotonic() - last_change > 10:
            return
        if open_leads != last:
            last, last_change = open_leads, time.monotonic()
        await asyncio.sleep(1)


async def profile_busiest(
    stack: BenchStack, load: CaptureLoad, tail: ObservationTail, monitor: ResourceMonitor,
    results: list[dict[str, Any]], workdir: Path, args: argparse.Namespace, end_stage: str,
) -> dict[str, Any] | None:
    pids = stack.service_pids()
    sustained = [s["offered_rate"] for s in results if s.get("sustained") and s["offered_rate"]]
    # Profile under a load the pipeline carries, else the profile shows a queue being worked off.
    rate = min(args.profile_rate, max(sustained)) if sustained else 10.0
    services: list[str] = []
    if args.profile == "auto":
        rated = [s for s in results if s["offered_rate"]] or results
        nearest = min(rated, key=lambda s: abs((s["offered_rate"] or 0) - rate)) if rated else None
        usage = nearest["resources"] if nearest else {}
        # The process that burns most CPU, and the one whose hop takes longest (often not the same).
        services.append(max(pids, key=lambda n: usage.get(n, {}).get("cpu_cores", 0.0)))
        if nearest:
            hops = {stage: (nearest["stages"][stage]["hop_from_previous_ms"] or {}).get("p50") or 0.0
                    for stage in STAGES[1:]}
            owner = {"enriched": "enrichment", "scored": "scoring", "routed": "routing"}
            slowest = owner[max(hops, key=lambda st: hops[st])]
            if slowest in pids and slowest not in services:
                services.append(slowest)
    else:
        services = [name for name in args.profile.split(",") if name]
    services = [name for name in services if name in pids]
    if not services:
        return {"error": f"no running service among {args.profile}"}
    seconds = max(args.duration, 10.0)
    print(f"profiling {', '.join(services)} at {rate:g} leads/s for {seconds:.0f}s ...", file=sys.stderr, flush=True)
    raws = {name: workdir / f"profile-{name}.txt" for name in services}
    samplers = [asyncio.create_task(profile.record(pids[name], seconds, raws[name])) for name in services]
    step = await run_step(Step("profile", rate, seconds), load, tail, monitor, PIPELINE_STAGES,
                          end_stage=end_stage, with_webhooks=end_stage == "routed", drain_timeout=args.drain_timeout)
    oks = await asyncio.gather(*samplers)
    result: dict[str, Any] = {"rate": rate, "seconds": seconds, "step": step, "services": {}}
    for name, ok in zip(services, oks, strict=True):
        if ok:
            result["services"][name] = {"raw": str(raws[name]),
                                        **profile.summarize(raws[name], expected_samples=int(seconds * 200))}
        else:
            result["services"][name] = {"error": f"py-spy failed; see {raws[name].with_suffix('.err')}"}
    return result


async def main_async(args: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:6]
    workdir = _tmp_workdir(run_id)
    steps = build_steps(args)
    stack = BenchStack(workdir, run_id)
    result: dict[str, Any] = {
        "run_id": run_id,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "workdir": str(workdir),
    }
    started = time.monotonic()
    try:
        print("starting Kafka and PostgreSQL (or using make up's) ...", file=sys.stderr, flush=True)
        result["infrastructure"] = await stack.start_infra()
        result["partitions"] = stack.partitions
        if not args.skip_floor:
            result["floor"] = await run_floor(stack, steps, workdir, args)
            result["durable_floor"] = await run_floor(stack, steps, workdir, args, durable=True)
        if not args.floor_only:
            result["pipeline"], result["profile"], result["idle_resources"] = await run_pipeline(
                stack, steps, workdir, args, result
            )
    finally:
        print("cleaning up ...", file=sys.stderr, flush=True)
        await stack.close()
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if result.get("pipeline") and result.get("floor"):
        result["floor_multiples"] = report.floor_multiples(result["pipeline"], result["floor"])
    if result.get("pipeline") and result.get("durable_floor"):
        result["durable_floor_multiples"] = report.floor_multiples(result["pipeline"], result["durable_floor"])
    if result.get("pipeline") and all(s.get("end_stage") == "routed" for s in report.measured(result["pipeline"])):
        result["verdicts"] = targets.judge(result)
    out: Path = args.out
    json_path = out / f"bench-{run_id}.json"
    png_path = out / f"bench-{run_id}.png"
    report.write_json(result, json_path)
    report.write_json(result, out / "bench-latest.json")
    plotted = report.plot(result, png_path)
    if plotted:
        report.plot(result, out / "bench-latest.png")
    report.print_tables(result)
    print(f"JSON: {json_path}" + (f"   plot: {png_path}" if plotted else "") + f"   logs: {workdir}")
    return 0


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_cancellable(main_async(args)))


async def _cancellable(work: Coroutine[Any, Any, int]) -> int:
    """SIGTERM and SIGINT cancel the run, so its finally blocks stop what it started."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        print("benchmark interrupted; everything it started is stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
