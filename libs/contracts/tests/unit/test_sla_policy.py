"""The SLA policies and the business-hours arithmetic sla's clocks and routing's ``lead.routed`` webhook share."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from leadflow_contracts import sla_policy

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


OFFICE = sla_policy.BusinessHours(timezone="Europe/Berlin", holiday_country="DE")


def test_without_a_calendar_the_clock_runs_around_the_clock() -> None:
    start = datetime(2026, 12, 24, 23, 0, tzinfo=UTC)
    assert sla_policy.add_working_time(start, 300, None) == start + timedelta(minutes=5)


def test_time_inside_working_hours_counts_in_full() -> None:
    assert sla_policy.add_working_time(berlin(2026, 11, 23, 10, 0), 300, OFFICE) == berlin(2026, 11, 23, 10, 5)


def test_a_lead_routed_at_night_waits_for_the_office_to_open() -> None:
    assert sla_policy.add_working_time(berlin(2026, 11, 23, 22, 0), 300, OFFICE) == berlin(2026, 11, 24, 9, 5)


def test_friday_evening_carries_over_the_weekend() -> None:
    # Friday 16:58: two minutes on Friday, three on Monday morning.
    assert sla_policy.add_working_time(berlin(2026, 11, 27, 16, 58), 300, OFFICE) == berlin(2026, 11, 30, 9, 3)


def test_public_holidays_are_skipped() -> None:
    # Thursday 24 Dec 16:58; 25 and 26 Dec are German public holidays, then the weekend.
    assert sla_policy.add_working_time(berlin(2026, 12, 24, 16, 58), 300, OFFICE) == berlin(2026, 12, 28, 9, 3)
    # Without the holiday calendar Friday 25 Dec would be a working day.
    plain = sla_policy.BusinessHours(timezone="Europe/Berlin")
    assert sla_policy.add_working_time(berlin(2026, 12, 24, 16, 58), 300, plain) == berlin(2026, 12, 25, 9, 3)


def test_regional_holidays_follow_the_subdivision() -> None:
    # 6 January (Epiphany) is a holiday in Bavaria but not in Berlin.
    bavaria = sla_policy.BusinessHours(timezone="Europe/Berlin", holiday_country="DE", holiday_subdivision="BY")
    berlin_state = sla_policy.BusinessHours(timezone="Europe/Berlin", holiday_country="DE", holiday_subdivision="BE")
    start = berlin(2026, 1, 5, 16, 59)
    assert sla_policy.add_working_time(start, 120, bavaria) == berlin(2026, 1, 7, 9, 1)
    assert sla_policy.add_working_time(start, 120, berlin_state) == berlin(2026, 1, 6, 9, 1)


def test_company_days_off_are_skipped() -> None:
    hours = sla_policy.BusinessHours(timezone="Europe/Berlin", extra_holidays=[date(2026, 11, 24)])
    assert sla_policy.add_working_time(berlin(2026, 11, 23, 16, 59), 120, hours) == berlin(2026, 11, 25, 9, 1)


def test_a_long_target_spans_several_working_days() -> None:
    # 24 working hours = three 8-hour days.
    assert sla_policy.add_working_time(berlin(2026, 11, 23, 9, 0), 24 * 3600, OFFICE) == berlin(2026, 11, 25, 17, 0)


def test_working_hours_follow_daylight_saving_time() -> None:
    # New York springs forward on Sunday 8 March 2026: 09:00 local is 14:00 UTC before, 13:00 UTC after.
    # A lead routed at 12:59 UTC waits for opening time: 14:00 UTC on Friday, 13:00 UTC on Monday.
    hours = sla_policy.BusinessHours(timezone="America/New_York", days=[0, 1, 2, 3, 4, 5, 6])
    friday = sla_policy.add_working_time(datetime(2026, 3, 6, 12, 59, tzinfo=UTC), 120, hours)
    assert friday == datetime(2026, 3, 6, 14, 2, tzinfo=UTC)
    monday = sla_policy.add_working_time(datetime(2026, 3, 9, 12, 59, tzinfo=UTC), 120, hours)
    assert monday == datetime(2026, 3, 9, 13, 2, tzinfo=UTC)


def test_working_time_between_is_the_inverse_of_adding_it() -> None:
    start = berlin(2026, 12, 24, 16, 58)
    due = sla_policy.add_working_time(start, 300, OFFICE)
    assert sla_policy.working_time_between(start, due, OFFICE) == timedelta(seconds=300)
    assert sla_policy.working_time_between(start, berlin(2026, 12, 27, 12, 0), OFFICE) == timedelta(minutes=2)


def test_calendars_are_validated() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        sla_policy.BusinessHours(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="no calendar for country"):
        sla_policy.BusinessHours(timezone="UTC", holiday_country="XX")
    with pytest.raises(ValidationError, match="not a subdivision"):
        sla_policy.BusinessHours(timezone="UTC", holiday_country="DE", holiday_subdivision="ZZ")
    with pytest.raises(ValidationError, match="end must be after start"):
        sla_policy.BusinessHours(timezone="UTC", start=time(17), end=time(9))
    with pytest.raises(ValidationError, match="at least one weekday"):
        sla_policy.BusinessHours(timezone="UTC", days=[])


def test_the_team_policy_wins_over_the_tier_default_which_wins_over_the_built_in() -> None:
    default_hot = sla_policy.Policy(id="d", tier="hot", target_seconds=600)
    emea_hot = sla_policy.Policy(id="e", tier="hot", target_seconds=120, team_id="emea")
    policies = [default_hot, emea_hot]
    assert sla_policy.choose_policy(policies, "hot", "emea") is emea_hot
    assert sla_policy.choose_policy(policies, "hot", "amer") is default_hot
    assert sla_policy.choose_policy(policies, "hot", None) is default_hot
    built_in = sla_policy.choose_policy(policies, "warm", "emea")
    assert (built_in.id, built_in.target_seconds, built_in.warning_ratio) == (None, 3600, 0.8)
    assert sla_policy.default_policy("cold").target_seconds == 24 * 3600


def test_the_owner_calendar_is_used_only_when_the_policy_asks_for_it() -> None:
    rep_hours = sla_policy.BusinessHours(timezone="America/New_York")
    policy = sla_policy.Policy(id="p", tier="hot", target_seconds=300, business_hours=OFFICE)
    assert sla_policy.calendar_for(policy, rep_hours) is OFFICE
    owner_first = sla_policy.Policy(id="p", tier="hot", target_seconds=300, business_hours=OFFICE, use_owner_hours=True)
    assert sla_policy.calendar_for(owner_first, rep_hours) is rep_hours
    assert sla_policy.calendar_for(owner_first, None) is OFFICE


def test_the_warning_comes_at_eighty_percent_of_the_target() -> None:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    plan = sla_policy.plan_clock(start, sla_policy.default_policy("hot"), None)
    assert plan.warning_at == start + timedelta(minutes=4)
    assert plan.due_at == start + timedelta(minutes=5)


def test_thresholds_fire_in_order_and_only_once() -> None:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    warn, due = start + timedelta(minutes=4), start + timedelta(minutes=5)
    assert sla_policy.due_thresholds(warn - timedelta(microseconds=1), warn, due, False, False) == []
    assert sla_policy.due_thresholds(warn, warn, due, False, False) == ["warning"]
    assert sla_policy.due_thresholds(due, warn, due, True, False) == ["breach"]
    # A clock found long overdue (say after an outage) emits both, warning first.
    assert sla_policy.due_thresholds(due + timedelta(hours=1), warn, due, False, False) == ["warning", "breach"]
    assert sla_policy.due_thresholds(due + timedelta(hours=1), warn, due, True, True) == []
    assert sla_policy.next_fire_at(warn, due, False, False) == warn
    assert sla_policy.next_fire_at(warn, due, True, False) == due
    assert sla_policy.next_fire_at(warn, due, True, True) is None
