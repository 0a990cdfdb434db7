"""schemathesis over routing with the admin key: no 5xx for any input, every answer as documented."""

from __future__ import annotations

import asyncio

import pytest
from routing_harness import ADMIN, Env

from leadflow_routing.app import create_app
from leadflow_stack.apifuzz import fuzz_service, serving_in_thread

pytestmark = pytest.mark.integration


async def test_schemathesis_finds_no_server_error_and_no_undocumented_body(env: Env):
    with serving_in_thread(create_app(env.settings()), "routing") as base_url:
        failures = await asyncio.to_thread(fuzz_service, base_url, ADMIN)
    assert failures == [], "\n".join(failures)
