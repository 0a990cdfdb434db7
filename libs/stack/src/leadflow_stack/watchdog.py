"""``python -m leadflow_stack.watchdog <pid> <start ticks> <root>``: clean up after a dead test run.

Kafka and the services die with the test process (PDEATHSIG), but PostgreSQL is daemonized
by pg_ctl. This tiny process outlives a pytest killed with SIGKILL and stops whatever the
session started as soon as pytest is gone. A normal session end terminates it first.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from leadflow_stack import procs


def main(argv: list[str]) -> int:
    owner = procs.PidRecord(pid=int(argv[0]), started=int(argv[1]))
    root = Path(argv[2])
    while owner.alive():
        time.sleep(0.5)
    strays = procs.marked_processes(root)
    if strays:
        logging.basicConfig(level=logging.INFO)
        logging.getLogger(__name__).warning("test session %s died; stopping %d process(es)", root, len(strays))
        procs.terminate(strays, timeout=10, group=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
