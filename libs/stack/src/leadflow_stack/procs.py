"""Process bookkeeping shared by the broker, the database and the service supervisor.

Every process the stack starts carries ``LEADFLOW_STACK_ROOT=<root dir>`` in its environment.
Pid files are the fast path; the marker is the safety net that lets ``down`` (and the pytest
plugin's cleanup of crashed sessions) find strays without ever touching processes that some
other stack, helper or user started.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

MARKER_ENV = "LEADFLOW_STACK_ROOT"

_PR_SET_PDEATHSIG = 1
_PROCFS = Path("/proc/self/stat").exists()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """Distinct free ports; sockets stay bound until all are picked so none repeats."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def port_is_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages; never raises."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(data.splitlines()[-lines:])


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the process that spawned it dies.

    Used for test sessions so that a pytest killed with SIGKILL does not leave brokers and
    services running. Linux only; elsewhere it silently does nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def yield_cpu(niceness: int) -> Callable[[], None]:
    """A preexec_fn (after ``start_new_session``): the child runs at ``niceness``, and so does its session.

    Linux schedules a session's processes as one group (autogroup, on by default): a process's own nice
    value weighs it only against its session's other processes, and each session gets an equal share of
    a full machine. So a child in a session of its own gets the niceness on its session's group as well.
    Raising a niceness needs no privilege; a parent already nicer keeps its own value. Elsewhere than
    Linux, or with autogroup off, the process's niceness alone does it.
    """

    def apply() -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, max(niceness, os.getpriority(os.PRIO_PROCESS, 0)))
        # Only a session leader's group is its own: elsewhere it would lower its caller's session too.
        if os.getsid(0) == os.getpid():
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(niceness))

    return apply


def start_ticks(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (field 22 of ``/proc/<pid>/stat``).

    Unlike psutil's ``create_time()`` (the boot time, read afresh from the wall clock, plus these
    ticks) it never moves: a wall-clock step (NTP, a suspended or forked VM) shifted create_time by
    the step, and a process compared by it looked like another process, so a live test session's
    watchdog stopped its stack. Raises ``psutil.NoSuchProcess`` when there is no such process.
    """
    if not _PROCFS:
        # Not Linux: psutil's figure, wall-clock steps and all, in hundredths of a second.
        return round(float(psutil.Process(pid).create_time()) * 100)
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        raise psutil.NoSuchProcess(pid) from None
    # The command name (field 2) is in parentheses and may hold spaces or ")": split after the last.
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[19])


@dataclass(frozen=True)
class PidRecord:
    """A pid plus when it started, so a recycled pid is never mistaken for our process."""

    pid: int
    started: int  # start_ticks(pid)

    @classmethod
    def of(cls, pid: int) -> PidRecord:
        return cls(pid=pid, started=start_ticks(pid))

    def process(self) -> psutil.Process | None:
        try:
            if start_ticks(self.pid) != self.started:
                return None
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def alive(self) -> bool:
        return self.process() is not None


def write_pidfile(path: Path, record: PidRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "started": record.started}))
    tmp.replace(path)


def read_pidfile(path: Path) -> PidRecord | None:
    """The record, or None when there is none or it is unreadable (also one written before
    ``started`` existed: the stack's env marker still finds that process for ``down``)."""
    try:
        raw = json.loads(path.read_text())
        return PidRecord(pid=int(raw["pid"]), started=int(raw["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def marked_processes(root: Path) -> list[psutil.Process]:
    """Live processes started by the stack rooted at ``root`` (found by their env marker)."""
    wanted = str(root.resolve())
    found: list[psutil.Process] = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(MARKER_ENV) == wanted and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _signal_group_or_pid(proc: psutil.Process, sig: signal.Signals, group: bool) -> None:
    try:
        if group and os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


def terminate(
    procs: Iterable[psutil.Process],
    *,
    timeout: float = 20.0,
    group: bool = True,
    on_kill: Callable[[psutil.Process], None] | None = None,
) -> None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL whatever is left.

    With ``group`` the signal goes to the process group when the process leads one (our
    children run in their own session), so grandchildren go down with it.
    """
    procs = list(procs)
    for proc in procs:
        _signal_group_or_pid(proc, signal.SIGTERM, group)
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        log.warning("process %s did not stop within %.0fs after SIGTERM; sending SIGKILL", proc.pid, timeout)
        if on_kill is not None:
            on_kill(proc)
        _signal_group_or_pid(proc, signal.SIGKILL, group)
    psutil.wait_procs(alive, timeout=5)


def kill(proc: psutil.Process, *, group: bool = True) -> None:
    """SIGKILL without grace, as a crash would; waits until the process is gone."""
    _signal_group_or_pid(proc, signal.SIGKILL, group)
    psutil.wait_procs([proc], timeout=10)


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait for processes to exit; returns the ones still alive."""
    _gone, alive = psutil.wait_procs(list(procs), timeout=timeout)
    return list(alive)
