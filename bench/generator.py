"""The load generator as a process of its own, at low priority: ``python -m bench.generator``.

Issue 17's bench runs the generator at low priority so the system it measures gets the CPU first, with its
CPU reported apart. A thread's niceness did not do it: Linux schedules each session as one group (autogroup)
and gives every group an equal share of a full machine, so the generator, in the session of whoever started
``make bench``, weighed as much as any service whatever its thread's nice value. Here it runs in a session of
its own whose group has that niceness (``leadflow_stack.procs.yield_cpu``), as sla's does.

The parent (``GeneratorProcess``) sends one JSON line a step on stdin (its rate or concurrency, its duration and
the file for its submissions); the generator drives the schedule, writes every ``Submission`` to that file as a
JSON line, and answers with one JSON line: the ``ScheduleResult``. End of stdin ends it. Its first stdout line
is ``ready``. It posts form fills to capture (``--capture-url``) or produces the floor's records
(``--kafka-bootstrap``, ``--kafka-topic``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Protocol

from bench import children
from bench.analysis import Submission
from bench.schedule import ScheduleResult, open_loop, saturate

GENERATOR_NICENESS = 10
STEP_SLACK_SECONDS = 600.0  # past its duration, the longest a step's last answers may take (a saturated stack)


class Fires(Protocol):
    async def fire(self, i: int, due: float) -> None: ...

    def take(self) -> list[Submission]: ...


@dataclasses.dataclass(frozen=True)
class StepOrder:
    """What the parent asks of the generator for one step."""

    rate: float | None  # None: saturate with ``concurrency`` requests outstanding
    duration: float
    concurrency: int
    out: str  # where the step's submissions go, one JSON object a line


async def drive(load: Fires, order: StepOrder) -> ScheduleResult:
    """Run one step's schedule and write its submissions to ``order.out``."""
    if order.rate is not None:
        schedule = await open_loop(order.rate, order.duration, load.fire)
    else:
        schedule = await saturate(order.concurrency, order.duration, load.fire)
    lines = [json.dumps(dataclasses.asdict(s)) + "\n" for s in load.take()]
    await asyncio.to_thread(Path(order.out).write_text, "".join(lines))
    return schedule


class GeneratorProcess:
    """The parent's handle on a running generator: one ``drive`` a step."""

    def __init__(self, child: children.Child, workdir: Path) -> None:
        self.child = child
        self.workdir = workdir
        self._steps = 0

    @property
    def pid(self) -> int:
        return self.child.pid

    async def drive(self, rate: float | None, duration: float, concurrency: int) -> tuple[
            ScheduleResult, list[Submission]]:
        self._steps += 1
        out = self.workdir / f"generator-step{self._steps}.jsonl"
        proc = self.child.proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write((json.dumps(dataclasses.asdict(StepOrder(rate, duration, concurrency, str(out)))) + "\n")
                         .encode())
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), duration + STEP_SLACK_SECONDS)
        if not line:
            raise RuntimeError(f"the load generator exited ({await proc.wait()}) during a step; see its log")
        schedule = ScheduleResult(**json.loads(line))
        text = await asyncio.to_thread(out.read_text)
        submissions = [Submission(**json.loads(row)) for row in text.splitlines()]
        out.unlink()
        return schedule, submissions

    async def close(self) -> None:
        proc = self.child.proc
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()  # end of orders: the generator closes its connections and exits
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 15)
        await self.child.stop()


async def start_generator(workdir: Path, *args: str) -> GeneratorProcess:
    """Start ``python -m bench.generator args`` in a low-priority session of its own."""
    child = await children.spawn("generator", "bench.generator", *args, log_path=str(workdir / "generator.log"),
                                 orders=True, niceness=GENERATOR_NICENESS)
    return GeneratorProcess(child, workdir)


async def _load(args: argparse.Namespace) -> tuple[Fires, Any]:
    """The generator's load and what closes it."""
    if args.capture_url:
        from bench.loadgen import CaptureLoad, FormFillFactory

        factory = FormFillFactory(args.run_id, duplicate_share=args.duplicate_share)
        capture = CaptureLoad(args.capture_url, args.form_key, factory, args.activity_share, args.api_key)
        return capture, capture.close
    from bench.floor import FloorLoad, FloorSource

    source = FloorSource(args.kafka_bootstrap, args.kafka_topic)
    await source.start()
    return FloorLoad(source), source.stop


async def _serve(args: argparse.Namespace) -> None:
    load, close = await _load(args)
    try:
        print("ready", flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            order = StepOrder(**json.loads(line))
            schedule = await drive(load, order)
            print(json.dumps(dataclasses.asdict(schedule)), flush=True)
    finally:
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generator", description="the bench's load generator")
    parser.add_argument("--capture-url", help="post form fills and activities to this capture")
    parser.add_argument("--form-key", default="demo")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--run-id", default="bench")
    parser.add_argument("--duplicate-share", type=float, default=0.08)
    parser.add_argument("--activity-share", type=float, default=0.2)
    parser.add_argument("--kafka-bootstrap", help="or produce the floor's records to this broker ...")
    parser.add_argument("--kafka-topic", help="... into this topic")
    args = parser.parse_args()
    if not args.capture_url and not (args.kafka_bootstrap and args.kafka_topic):
        parser.error("give --capture-url, or --kafka-bootstrap and --kafka-topic")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
