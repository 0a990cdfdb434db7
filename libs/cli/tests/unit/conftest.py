"""The CLI's unit fixtures; the fakes live in cli_fakes (importable by name)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Test modules import the helpers as a plain module; pytest's importlib mode does not add this dir.
sys.path.insert(0, str(Path(__file__).parent))

from cli_fakes import FakeServices


@pytest.fixture
def fake() -> FakeServices:
    return FakeServices()
