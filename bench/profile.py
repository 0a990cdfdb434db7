"""Where a service's time goes: py-spy samples of the process under load, summarized by package."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path, *, rate: int = 200) -> bool:
    """Sample ``pid`` for ``seconds`` into a collapsed-stack file; False when py-spy is unusable."""
    exe = py_spy()
    if exe is None:
        return False
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", str(rate),
        # --gil: only samples holding the GIL, i.e. Python work; a loop idling in epoll is not time spent.
        "--format", "raw", "--output", str(out), "--nonblocking", "--gil",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await proc.communicate()
    if proc.returncode != 0:
        out.with_suffix(".err").write_bytes(err)
        return False
    return await asyncio.to_thread(out.exists)


def _split(frame: str) -> tuple[str, str]:
    """'func (path/file.py:12)' -> ('func', 'path/file.py')."""
    func, sep, rest = frame.partition(" (")
    if not sep:
        return frame, frame
    return func, rest.removesuffix(")").rsplit(":", 1)[0]


def _package(path: str) -> str:
    # py-spy shortens paths to what follows sys.path: "sqlalchemy/orm/session.py", "asyncio/runners.py".
    if path.startswith("<"):
        # "<sqlalchemy generated ... wrapper>" belongs to sqlalchemy; "<frozen runpy>" to Python.
        return "sqlalchemy" if path.startswith("<sqlalchemy") else "python"
    return path.split("/", 1)[0].removesuffix(".py") if "/" in path else Path(path).stem


def summarize(raw: Path, expected_samples: int, top: int = 15) -> dict[str, Any]:
    """Share of busy samples by package (inclusive: anywhere on the stack; self: the running frame).

    Samples are taken only while the process holds the GIL, not while it sleeps in epoll, so
    ``busy_pct`` (samples over samples asked for) is the share of wall time it was running
    Python *or ready to and waiting for a CPU*: on an overloaded machine that is well above the
    CPU time psutil reports, and the gap is time lost to CPU contention.
    """
    inclusive: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        parsed = [_split(frame) for frame in frames]
        total += count
        leaf_func, leaf_file = parsed[-1]
        for package in {_package(file) for _func, file in parsed}:
            inclusive[package] += count
        self_pkg[_package(leaf_file)] += count
        self_func[f"{leaf_func} ({_package(leaf_file)})"] += count

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "busy_pct": round(100 * total / expected_samples, 1) if expected_samples else None,
        "inclusive_pct_by_package": shares(inclusive),
        "self_pct_by_package": shares(self_pkg),
        "self_pct_by_function": shares(self_func),
    }
