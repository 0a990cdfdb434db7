"""A service started through the Stack (as `make up` does) honours leadflow.env and the environment."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from leadflow_stack import procs
from leadflow_stack.pytest_plugin import Infra
from leadflow_stack.stack import Stack, service_database

pytestmark = pytest.mark.integration


async def test_capture_runs_with_the_port_and_rate_limit_given_in_leadflow_env(infra: Infra, tmp_path: Path) -> None:
    env_file = tmp_path / "leadflow.env"
    port = procs.free_port()
    env_file.write_text(
        "# capture, as a user would tune it\n"
        f"CAPTURE_PORT={port}\n"
        "CAPTURE_RATE_LIMIT_IP_PER_MINUTE=1\n"
        "CAPTURE_RATE_LIMIT_IP_BURST=2\n"
    )
    prefix = infra.new_topic_prefix("user-settings")
    stack = Stack(
        infra.stack.root,
        replace(infra.stack.config, topic_prefix=prefix, service_ports={"capture": procs.free_port()}),
        env_file=env_file,
        environ={"CAPTURE_RATE_LIMIT_IP_BURST": "3"},
    )
    await stack.create_topics(partitions=1)
    await stack.postgres.create_database(service_database("capture"))
    config = stack.service_config("capture")
    await stack.services.start(config, seed_demo=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            codes = [
                (await client.post("/v1/forms/demo/submissions", json={"email": f"env{n}@example.com"})).status_code
                for n in range(4)
            ]
        # The file's per-minute rate with the environment's burst of 3 (over the file's 2).
        assert codes == [202, 202, 202, 429]
        assert (await stack.status()).services[0].url == f"http://127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(stack.services.stop, "capture")
