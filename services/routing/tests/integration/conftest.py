"""Routing's integration fixtures; the helpers live in routing_harness (importable by name)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest_asyncio

# Test modules import the helpers as a plain module; pytest's importlib mode does not add this dir.
sys.path.insert(0, str(Path(__file__).parent))

from routing_harness import Env, new_env


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(infra: Any) -> Env:
    return await new_env(infra)
