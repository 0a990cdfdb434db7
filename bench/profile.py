"""Where a service's time goes: py-spy samples of the process under load, summarized by package."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


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
        "--format", "raw", "--output", str(out), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await proc.communicate()
    if proc.returncode != 0:
        out.with_suffix(".err").write_bytes(err)
        return False
    return await asyncio.to_thread(out.exists)


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    match = re.search(r"(leadflow_[a-z]+)/", path)
    if match:
        return match.group(1)
    if "/python3" in path or path.startswith("<"):
        return "stdlib:" + Path(path).stem
    return Path(path).stem


def summarize(raw: Path, expected_samples: int, top: int = 15) -> dict[str, Any]:
    """Share of busy samples by package (inclusive: anywhere on the stack; self: the running frame).

    py-spy leaves out samples where the process sleeps (waiting on sockets), so the samples
    are the time it was on a CPU; ``busy_pct`` relates them to the samples asked for.
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
        parsed = []
        for frame in frames:
            match = _FRAME.match(frame)
            parsed.append((match.group("func"), match.group("file")) if match else (frame, frame))
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
