"""The serving process's collector settings (leadflow_kit.heap)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from leadflow_kit.heap import OLDER_THRESHOLD, YOUNG_THRESHOLD, settle_garbage_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_what_exists_at_start_is_frozen_and_cycles_made_later_are_still_collected() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    before = Node()
    settle_garbage_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)
    assert gc.get_freeze_count() > 0
    assert not any(obj is before for obj in gc.get_objects())  # frozen: no generation holds it

    cycle = Node()
    cycle.other = Node()
    cycle.other.other = cycle
    alive = weakref.ref(cycle)
    del cycle
    assert alive() is not None  # a cycle: only the collector frees it
    gc.collect()
    assert alive() is None
