"""``python -m leadflow_stack up|down|status|logs|demo`` — what the Makefile runs.

This is a terminal entrypoint: its stdout is the user interface, so it prints; everything it
calls logs instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from leadflow_console.auth import FIRST_ADMIN
from leadflow_stack import procs
from leadflow_stack.console import CONSOLE
from leadflow_stack.demo import run_demo
from leadflow_stack.errors import StackError
from leadflow_stack.handoff_demo import HandoffJourney, run_handoff_demo
from leadflow_stack.stack import Stack, StackStatus


def _print_status(status: StackStatus, *, header: str) -> None:
    print(header)
    print(f"  Kafka       {status.kafka:<11} bootstrap servers {status.bootstrap_servers}")
    print(f"  PostgreSQL  {status.postgres:<11} 127.0.0.1:{status.postgres_port} (user leadflow / password leadflow)")
    for name, url in sorted(status.databases.items()):
        print(f"              {name:<11} {url}")
    for service in status.services:
        line = f"  {service.name:<11} {service.status:<11} {service.url}"
        if service.name == CONSOLE:
            line += "   the web console (sign-in page)" if service.status in ("ready", "running") else ""
        elif service.status in ("ready", "running"):
            line += f"   docs {service.url}/docs   metrics {service.url}/metrics"
        print(line)
    for name in status.skipped:
        print(f"  {name:<11} skipped     (leadflow_{name}.__main__ not importable yet)")
    print(f"  admin API key  {status.admin_api_key}   (header: Authorization: Bearer <key>)")
    print(f"  logs           {status.root / 'logs'}")
    if status.console_sign_in is not None:
        console = next((s for s in status.services if s.name == CONSOLE), None)
        password, kept_in = status.console_sign_in
        if console is not None:
            print(f"Console: {console.url} — sign in as {FIRST_ADMIN} / {password}   (password kept in {kept_in})")


async def _up(stack: Stack, with_services: bool) -> int:
    started = time.monotonic()
    try:
        status = await stack.up(with_services=with_services)
    except StackError as exc:
        # Show what did come up: a broken service should not hide a working broker and database.
        _print_status(await stack.status(), header=f"LeadFlow stack PARTLY up ({stack.root})")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print_status(status, header=f"LeadFlow stack up in {time.monotonic() - started:.1f}s ({stack.root})")
    return 0


async def _down(stack: Stack) -> int:
    strays = await stack.down()
    for stray in strays:
        print(f"  had to stop stray process {stray}")
    left = stack.leftover_processes()
    if left:
        print(f"still running after down: {[p.pid for p in left]}", file=sys.stderr)
        return 1
    print(f"LeadFlow stack down: no process left ({stack.root})")
    return 0


async def _status(stack: Stack) -> int:
    _print_status(await stack.status(), header=f"LeadFlow stack at {stack.root}")
    return 0


def _logs(stack: Stack, names: Sequence[str], lines: int, follow: bool) -> int:
    files = sorted(stack.log_dir.glob("*.log")) if stack.log_dir.exists() else []
    if names:
        files = [f for f in files if f.name.split(".")[0] in names]
    if not files:
        print(f"no logs in {stack.log_dir}")
        return 1
    for path in files:
        print(f"===== {path} =====")
        print(procs.tail(path, lines))
    if not follow:
        return 0
    offsets = {path: path.stat().st_size for path in files}
    try:
        while True:
            for path in files:
                size = path.stat().st_size
                if size > offsets[path]:
                    with path.open("rb") as fh:
                        fh.seek(offsets[path])
                        chunk = fh.read().decode("utf-8", errors="replace")
                    offsets[path] = size
                    for line in chunk.splitlines():
                        print(f"{path.stem:<18} {line}")
            time.sleep(0.3)
    except KeyboardInterrupt:
        return 0


async def _demo(stack: Stack, timeout: float) -> int:
    capture = stack.services.config("capture")
    sla = stack.services.config("sla")
    routing = stack.services.config("routing")
    ready = capture is not None and sla is not None and routing is not None
    ready = ready and all([await stack.services.ready(name) for name in ("capture", "sla", "routing")])
    if capture is None or sla is None or routing is None or not ready:
        print("capture, routing and sla must be running: run `make up` first", file=sys.stderr)
        return 1
    journeys = await run_demo(capture.url, sla.url, stack.config.admin_api_key, timeout=timeout)
    for journey in journeys:
        print(f"lead {journey.lead_id}  {journey.email}")
        start = journey.stage_at("captured")
        for stage, at in journey.stages:
            offset = f"+{(at - start).total_seconds() * 1000:8.1f} ms" if start else ""
            print(f"    {stage:<20} {at.isoformat()}  {offset}")
        ms = journey.capture_to_routed_ms
        print(f"    capture -> routed: {f'{ms:.1f} ms' if ms is not None else 'NOT ROUTED within the timeout'}")
    routed = [j.capture_to_routed_ms for j in journeys if j.capture_to_routed_ms is not None]
    if routed:
        print(
            f"{len(routed)}/{len(journeys)} leads routed; capture -> routed min {min(routed):.1f} ms, "
            f"max {max(routed):.1f} ms"
        )
    handoff = await run_handoff_demo(capture.url, sla.url, routing.url, stack.config.admin_api_key, timeout=timeout)
    _print_handoff(handoff)
    handed_off = handoff.skipped is not None or handoff.handed_off is not None
    return 0 if len(routed) == len(journeys) and handed_off else 1


def _print_handoff(journey: HandoffJourney) -> None:
    if journey.skipped is not None:
        print(f"\nhand-off (cold -> nurture -> MQL -> rep) not shown: {journey.skipped}")
        return
    print(f"\nhand-off: lead {journey.lead_id}  {journey.email}  (cold -> nurture -> MQL -> rep)")
    start = journey.steps[0].at if journey.steps else None
    for step in journey.steps:
        offset = f"+{(step.at - start).total_seconds() * 1000:8.1f} ms" if start else ""
        print(f"    {step.stage:<10} {step.at.isoformat(timespec='milliseconds')}  {offset}  {step.detail}")
    if journey.clock is not None:
        print(f"    SLA clock  {journey.clock['tier']}, started {journey.clock['started_at']}, "
              f"due {journey.clock['due_at']}")
    handed = journey.handed_off
    if handed is None or start is None:
        print("    NOT HANDED OFF from nurture within the timeout")
    else:
        print(f"    capture -> rep: {(handed.at - start).total_seconds() * 1000:.1f} ms")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadflow_stack", description="LeadFlow local stack")
    parser.add_argument("--root", type=Path, help="stack directory (default: <repo>/.stack)")
    parser.add_argument(
        "--env-file", type=Path, help="the services' settings, dotenv format (default: <repo>/leadflow.env)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Kafka, PostgreSQL and the services (idempotent)")
    up.add_argument("--infra-only", action="store_true", help="Kafka and PostgreSQL only")
    sub.add_parser("down", help="stop everything the stack started")
    sub.add_parser("status", help="what runs where")
    logs = sub.add_parser("logs", help="show (or follow) the logs")
    logs.add_argument("names", nargs="*", help="kafka, postgres, capture, ... (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=30)
    logs.add_argument("-f", "--follow", action="store_true")
    demo = sub.add_parser("demo", help="post sample form fills and show each lead's journey")
    demo.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Their per-request INFO lines drown the few lines that matter; failures still surface.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        stack = Stack.dev(args.root, env_file=args.env_file)
        if args.command == "up":
            return asyncio.run(_up(stack, with_services=not args.infra_only))
        if args.command == "down":
            return asyncio.run(_down(stack))
        if args.command == "status":
            return asyncio.run(_status(stack))
        if args.command == "logs":
            return _logs(stack, args.names, args.lines, args.follow)
        if args.command == "demo":
            return asyncio.run(_demo(stack, args.timeout))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2
