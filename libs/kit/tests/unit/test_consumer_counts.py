"""A batch's events are counted as one by one: each outcome by topic, and one handling time each."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from leadflow_kit.consumer import ConsumerRunner
from leadflow_kit.metrics import ServiceMetrics


def _sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_a_batch_counts_each_events_outcome_and_handling_time() -> None:
    registry = CollectorRegistry()
    runner: Any = ConsumerRunner.__new__(ConsumerRunner)
    runner.metrics = ServiceMetrics("kit-test", registry)
    runner.settings = SimpleNamespace(service_name="kit-test")
    outcomes = [("a", "processed"), ("b", "processed"), ("a", "duplicate"), ("a", "processed"), ("a", "unwanted")]
    runner._count(outcomes, 0.0, len(outcomes))
    runner._count([("b", "processed")], 0.0, 1)
    consumed = {(topic, outcome): _sample(registry, "leadflow_events_consumed_total",
                                         {"service": "kit-test", "topic": topic, "outcome": outcome})
                for topic in "ab" for outcome in ("processed", "duplicate", "unwanted")}
    assert consumed == {("a", "processed"): 2, ("a", "duplicate"): 1, ("a", "unwanted"): 1,
                        ("b", "processed"): 2, ("b", "duplicate"): 0, ("b", "unwanted"): 0}
    handled = {topic: _sample(registry, "leadflow_event_handle_duration_seconds_count",
                              {"service": "kit-test", "topic": topic}) for topic in "ab"}
    assert handled == {"a": 4, "b": 2}
