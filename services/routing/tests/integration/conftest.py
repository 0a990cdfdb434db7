"""Routing's integration fixtures; the helpers live in routing_harness (importable by name)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

# Test modules import the helpers as a plain module; pytest's importlib mode does not add this dir.
sys.path.insert(0, str(Path(__file__).parent))

from routing_harness import Env, new_env

from leadflow_kit.db import Database
from leadflow_routing.seed import seed_demo


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(infra: Any) -> Env:
    return await new_env(infra)


@pytest_asyncio.fixture(loop_scope="session")
async def fresh(infra: Any) -> AsyncIterator[Env]:
    """A database and topics of its own per test: webhook subscriptions are global to a database."""
    env = await new_env(infra, "routing-wh")
    settings = env.settings()
    db = Database(settings.database_url)
    await seed_demo(settings, db)
    await db.dispose()
    yield env
