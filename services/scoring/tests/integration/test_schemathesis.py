"""schemathesis over scoring with the admin key: no 5xx for any input, every answer as documented."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import leadflow_scoring
from leadflow_kit.migrations import upgrade
from leadflow_scoring.app import create_app
from leadflow_scoring.settings import Settings
from leadflow_stack.apifuzz import fuzz_service, serving_in_thread
from leadflow_stack.testing import bearer, service_settings

pytestmark = pytest.mark.integration

MIGRATIONS = Path(leadflow_scoring.__file__).parent / "migrations"


async def test_schemathesis_finds_no_server_error_and_no_undocumented_body(infra: Any):
    database_url = await infra.new_database("scoring")
    await asyncio.to_thread(upgrade, MIGRATIONS, database_url)
    prefix = infra.new_topic_prefix("scoring")
    await infra.create_topics(prefix, partitions=1)
    settings = service_settings(Settings, database_url=database_url, bootstrap_servers=infra.bootstrap_servers,
                                topic_prefix=prefix, database_pool_size=4)
    with serving_in_thread(create_app(settings), "scoring") as base_url:
        failures = await asyncio.to_thread(fuzz_service, base_url, bearer())
    assert failures == [], "\n".join(failures)
