"""The load generator in its own low-priority process, driven step by step against a real HTTP server."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

from bench.generator import GENERATOR_NICENESS, start_generator


async def _capture_stand_in(posted: list[tuple[str, dict[str, object]]]) -> asyncio.Server:
    """An HTTP/1.1 server answering every POST 202 with a lead id, keeping connections alive (as capture does)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode().split("\r\n")
                length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length"))
                body = json.loads(await reader.readexactly(length))
                posted.append((lines[0].split()[1], body))
                answer = json.dumps({"lead_id": str(uuid.uuid4())}).encode()
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def _autogroup_niceness(pid: int) -> int | None:
    """The niceness of ``pid``'s scheduling group ("/autogroup-123 nice 10"); None without autogroup."""
    path = Path(f"/proc/{pid}/autogroup")
    return int(path.read_text().split()[-1]) if path.exists() else None


async def test_the_generator_runs_at_low_priority_in_a_session_of_its_own_and_reports_every_submission(
    tmp_path: Path,
) -> None:
    posted: list[tuple[str, dict[str, object]]] = []
    server = await _capture_stand_in(posted)
    port = server.sockets[0].getsockname()[1]
    generator = await start_generator(tmp_path, "--capture-url", f"http://127.0.0.1:{port}", "--form-key", "demo",
                                      "--api-key", "k", "--run-id", "t1", "--activity-share", "0.5")
    try:
        pid = generator.pid
        # Its own session, so its own scheduling group, and both at the generator's niceness: against the
        # services' groups on a full machine a thread's nice value alone weighs nothing.
        assert os.getsid(pid) == pid != os.getsid(0)
        assert os.getpriority(os.PRIO_PROCESS, pid) >= GENERATOR_NICENESS
        assert _autogroup_niceness(pid) in (GENERATOR_NICENESS, None)

        schedule, submissions = await generator.drive(40, 0.5, 64)
        assert schedule.offered == 20 and schedule.shed == 0
        fills = [s for s in submissions if s.kind != "activity"]
        activities = [s for s in submissions if s.kind == "activity"]
        assert len(fills) == 20 and len(activities) == 10  # one activity for every other fill
        assert all(s.status == 202 and s.error is None and s.sent is not None for s in submissions)
        assert all(s.lead_id for s in fills) and len({s.lead_id for s in fills}) == 20
        assert sum(path == "/v1/forms/demo/submissions" for path, _ in posted) == 20

        # The next step continues the same people (its repeats name earlier emails) and may saturate.
        schedule, submissions = await generator.drive(None, 0.3, 4)
        assert schedule.offered == len([s for s in submissions if s.kind != "activity"]) > 0
        assert all(s.ok for s in submissions)
        assert os.listdir(tmp_path) == ["generator.log"]  # each step's file is read and removed
    finally:
        await generator.close()
        server.close()
    assert generator.child.proc.returncode == 0  # the end of its orders ends it cleanly
