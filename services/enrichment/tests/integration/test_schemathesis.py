"""schemathesis over enrichment with the admin key: no 5xx for any input, every answer as documented."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from leadflow_enrichment.app import create_app
from leadflow_enrichment.settings import Settings
from leadflow_stack.apifuzz import fuzz_service, serving_in_thread
from leadflow_stack.testing import bearer, service_settings

pytestmark = pytest.mark.integration


async def test_schemathesis_finds_no_server_error_and_no_undocumented_body(enrichment_env: Any):
    settings = service_settings(Settings, database_url=enrichment_env.database_url,
                                bootstrap_servers=enrichment_env.bootstrap_servers,
                                topic_prefix=enrichment_env.prefix, database_pool_size=4)
    with serving_in_thread(create_app(settings), "enrichment") as base_url:
        failures = await asyncio.to_thread(fuzz_service, base_url, bearer())
    assert failures == [], "\n".join(failures)
