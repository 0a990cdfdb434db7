"""A process is recognised by its pid and when it started, in ticks since boot: a wall-clock step
(NTP, a suspended or forked VM) must not make a live process look like another one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from leadflow_stack import procs


def test_a_live_process_is_recognised_by_its_record() -> None:
    record = procs.PidRecord.of(os.getpid())
    assert record.alive()
    assert record.process() is not None


def test_a_process_started_at_another_time_is_not_ours() -> None:
    record = procs.PidRecord.of(os.getpid())
    assert not procs.PidRecord(pid=record.pid, started=record.started + 1).alive()


def test_a_stepped_wall_clock_does_not_change_who_a_process_is(monkeypatch: pytest.MonkeyPatch) -> None:
    record = procs.PidRecord.of(os.getpid())
    # psutil's create_time is the boot time read from the wall clock plus the start in ticks: a step of
    # the clock moves it. The record must not depend on it.
    real = psutil.Process.create_time
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: real(self) + 37.5)
    assert procs.PidRecord.of(os.getpid()) == record
    assert record.alive()


def test_a_finished_process_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    record = procs.PidRecord.of(child.pid)
    child.wait()
    assert not record.alive()


def test_a_command_name_with_spaces_and_parentheses_is_read_past(tmp_path: Path) -> None:
    # The command name (field 2 of /proc/<pid>/stat) is whatever the process set: read after its last ")".
    script = ("import ctypes, sys, time\n"
              "ctypes.CDLL('libc.so.6').prctl(15, b'x) (y z', 0, 0, 0)\n"
              "print('named', flush=True)\n"
              "time.sleep(30)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"named"
        assert Path(f"/proc/{child.pid}/comm").read_text().strip() == "x) (y z"
        record = procs.PidRecord.of(child.pid)
        assert record.started == procs.PidRecord.of(child.pid).started
        assert record.alive()
    finally:
        child.kill()
        child.wait()


def test_a_pid_file_round_trips_and_an_old_one_reads_as_none(tmp_path: Path) -> None:
    record = procs.PidRecord.of(os.getpid())
    path = tmp_path / "svc.pid"
    procs.write_pidfile(path, record)
    assert procs.read_pidfile(path) == record
    path.write_text('{"pid": 1, "create_time": 1764892800.5}')
    assert procs.read_pidfile(path) is None
