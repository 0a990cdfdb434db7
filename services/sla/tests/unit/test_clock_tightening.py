"""A running clock tightens on a tier upgrade, counted from its start; it never loosens."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from leadflow_contracts.sla_policy import default_policy
from leadflow_sla.domain import SlaClock
from leadflow_sla.lifecycle import is_upgrade, tightened_clock

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

WARM = SlaClock(
    id="clk", lead_id="lead", routed_event_id="evt", tier="warm", team_id=None, owner_rep_id="rep-a", policy_id=None,
    correlation_id=None, lead_captured_at=None, target_seconds=3600, warning_ratio=0.8, breach_limit=2,
    business_hours=None, started_at=T0, warning_at=T0 + timedelta(minutes=48), due_at=T0 + timedelta(hours=1),
    status="open", next_fire_at=T0 + timedelta(minutes=48),
)


def test_warm_to_hot_takes_the_hot_deadline_from_the_clocks_start() -> None:
    changes = tightened_clock(WARM, "hot", default_policy("hot"), None)
    assert changes is not None
    assert (changes["tier"], changes["target_seconds"]) == ("hot", 300)
    assert (changes["warning_at"], changes["due_at"]) == (T0 + timedelta(minutes=4), T0 + timedelta(minutes=5))
    assert changes["next_fire_at"] == T0 + timedelta(minutes=4)


def test_a_warned_clock_next_fires_at_its_new_deadline() -> None:
    changes = tightened_clock(replace(WARM, warned_at=T0), "hot", default_policy("hot"), None)
    assert changes is not None and changes["next_fire_at"] == T0 + timedelta(minutes=5)


def test_a_downgrade_a_stopped_or_a_breached_clock_is_left_alone() -> None:
    assert tightened_clock(WARM, "cold", default_policy("cold"), None) is None
    assert tightened_clock(WARM, "warm", default_policy("warm"), None) is None
    assert tightened_clock(replace(WARM, status="stopped"), "hot", default_policy("hot"), None) is None
    assert tightened_clock(replace(WARM, breached_at=T0), "hot", default_policy("hot"), None) is None


def test_a_hot_policy_slower_than_the_running_clock_does_not_loosen_it() -> None:
    slow_hot = replace(default_policy("hot"), target_seconds=7200)
    assert tightened_clock(WARM, "hot", slow_hot, None) is None
    assert is_upgrade("cold", "warm") and is_upgrade(None, "hot") and not is_upgrade("hot", "warm")
