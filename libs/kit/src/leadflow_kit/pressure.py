"""How short of CPU the machine (or the service's container) is, from Linux's pressure stall information.

PSI's "some" line counts the microseconds during which at least one runnable task waited for a CPU; its
share of the wall time since the last reading is the signal a consumer batches on (``consumer_linger_ms``):
near 0 when the CPUs are free, near 1 when work queues for them. It says nothing about which process is
short, which is the point: a cheap hop that waits a few milliseconds frees CPU for the busiest one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

# The container's own cgroup (v2) first, where it has one: its tasks' pressure, not the whole host's. Then the host's.
PSI_FILES = (Path("/sys/fs/cgroup/cpu.pressure"), Path("/proc/pressure/cpu"))


class CpuPressure:
    """The share of recent wall time during which some runnable task waited for a CPU, over at least
    ``interval`` seconds: the file is read again only once that much time has passed since the last read."""

    def __init__(self, path: Path, *, interval: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.interval = interval
        self._clock = clock
        self._total_us = self._read()  # raises OSError or ValueError where PSI is off or unreadable
        self._at = clock()
        self._share = 0.0

    @classmethod
    def find(cls, paths: tuple[Path, ...] | None = None) -> CpuPressure | None:
        """The first readable PSI file's pressure (of ``PSI_FILES`` unless given); None where the kernel has
        none (not Linux, or booted with ``psi=0``)."""
        for path in paths if paths is not None else PSI_FILES:
            try:
                return cls(path)
            except (OSError, ValueError):
                continue
        return None

    def share(self) -> float:
        """The stalled share of the wall time between the last two reads (0..1)."""
        now = self._clock()
        if now - self._at >= self.interval:
            try:
                total_us = self._read()
            except (OSError, ValueError):
                return self._share  # a cgroup file gone with its container: keep the last figure
            elapsed = now - self._at
            self._share = min(max((total_us - self._total_us) / 1e6 / elapsed, 0.0), 1.0)
            self._total_us, self._at = total_us, now
        return self._share

    def _read(self) -> int:
        # A procfs/cgroupfs read: answered from kernel memory in microseconds, never a disk wait.
        for line in self.path.read_text().splitlines():
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1])
        raise ValueError(f"no 'some' line in {self.path}")


def cpu_shortage(threshold: float, *, enabled: bool = True) -> Callable[[], bool]:
    """A test of whether the CPU is short now: the stalled share (``CpuPressure.find``'s) is at least
    ``threshold``. Always False when not ``enabled`` or where the kernel has no PSI. The consumers' linger and
    the webhook dispatchers' recording share it (``consumer_linger_cpu_pressure``)."""
    pressure = CpuPressure.find() if enabled else None
    if pressure is None:
        return lambda: False
    return lambda: pressure.share() >= threshold
