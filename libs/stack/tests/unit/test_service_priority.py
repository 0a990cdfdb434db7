"""Services off the hand-off path start at a lower CPU priority, their session's scheduling group too."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from leadflow_stack import procs
from leadflow_stack.services import SERVICE_NICENESS, ServiceSupervisor

AUTOGROUP = Path("/proc/self/autogroup")
# What a child reports: its niceness, and its scheduling group as /proc/self/autogroup shows it ("" without).
REPORT = (
    "import os, pathlib; p = pathlib.Path('/proc/self/autogroup');"
    "print(os.getpriority(os.PRIO_PROCESS, 0)); print(p.read_text().strip() if p.exists() else '')"
)


def _child(*, new_session: bool, niceness: int) -> tuple[int, str]:
    out = subprocess.run(
        [sys.executable, "-c", REPORT], capture_output=True, text=True, check=True,
        start_new_session=new_session, preexec_fn=procs.yield_cpu(niceness),
    ).stdout.splitlines()
    return int(out[0]), out[1] if len(out) > 1 else ""


def test_a_child_in_a_session_of_its_own_runs_and_is_scheduled_at_the_niceness() -> None:
    nice, group = _child(new_session=True, niceness=7)
    assert nice == 7
    if AUTOGROUP.exists():  # Linux with autogroup: the session's group is what the scheduler weighs
        assert group.endswith("nice 7"), group


def test_a_child_in_its_caller_s_session_leaves_the_caller_s_group_alone() -> None:
    before = AUTOGROUP.read_text() if AUTOGROUP.exists() else ""
    try:
        nice, group = _child(new_session=False, niceness=7)
        assert nice == 7
        assert (AUTOGROUP.read_text() if AUTOGROUP.exists() else "") == before
        assert group == before.strip()
    finally:
        if before and AUTOGROUP.read_text() != before:  # put the test session's group back (as root it can)
            with contextlib.suppress(OSError):
                AUTOGROUP.write_text(before.rsplit(" ", 1)[-1])


def test_sla_yields_and_the_hand_off_path_does_not(tmp_path: Path) -> None:
    assert SERVICE_NICENESS == {"sla": 10}
    supervisor = ServiceSupervisor(tmp_path / "run", tmp_path / "logs", tmp_path)
    assert supervisor._preexec("sla") is not None
    for name in ("capture", "enrichment", "scoring", "routing", "console"):
        assert supervisor._preexec(name) is None
    # A test stack's services share nothing out: their tests wait on sla as much as on the others.
    assert ServiceSupervisor(tmp_path / "run", tmp_path / "logs", tmp_path, niceness={})._preexec("sla") is None
