"""The whole pipeline as separate processes on the suite's real Kafka and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from e2e_support import Pipeline, running_pipeline


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pipeline(infra: Any) -> AsyncIterator[Pipeline]:
    async with running_pipeline(infra) as started:
        yield started
