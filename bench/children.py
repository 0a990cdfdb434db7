"""Helper processes of the benchmark (floor relays, the observer), started and stopped by pid."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass

import psutil


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    ready_line: str = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def process(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    async def stop(self, timeout: float = 15.0) -> None:
        if self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def spawn(name: str, module: str, *args: str, log_path: str, ready_timeout: float = 60.0) -> Child:
    """Start ``python -m module args``; wait for its first stdout line (its 'ready')."""
    with open(log_path, "ab") as log_file:  # noqa: ASYNC230 - a local log file, opened once
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log_file,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    child = Child(name, proc)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), ready_timeout)
    except TimeoutError:
        await child.stop()
        raise RuntimeError(f"{name} not ready within {ready_timeout:.0f}s; see {log_path}") from None
    if not line:
        await proc.wait()
        raise RuntimeError(f"{name} exited ({proc.returncode}) before it was ready; see {log_path}")
    child.ready_line = line.decode().strip()
    return child
