"""schemathesis over sla with the admin key: no 5xx for any input, every answer as documented."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from leadflow_sla.app import create_app
from leadflow_stack.apifuzz import fuzz_service, serving_in_thread
from leadflow_stack.testing import bearer

pytestmark = pytest.mark.integration


async def test_schemathesis_finds_no_server_error_and_no_undocumented_body(sla_env: Any):
    settings = sla_env.settings(database_pool_size=4)
    with serving_in_thread(create_app(settings), "sla") as base_url:
        failures = await asyncio.to_thread(fuzz_service, base_url, bearer(settings.admin_api_key.get_secret_value()))
    assert failures == [], "\n".join(failures)
