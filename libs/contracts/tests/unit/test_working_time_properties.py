"""Working-time arithmetic holds for any start, duration and calendar (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_contracts import sla_policy

calendars = st.builds(
    sla_policy.BusinessHours,
    timezone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]),
    days=st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True),
    start=st.sampled_from([time(0, 0), time(7, 30), time(9, 0)]),
    end=st.sampled_from([time(12, 0), time(17, 0), time(23, 59)]),
    holiday_country=st.sampled_from([None, "DE", "US", "IN", "AU"]),
)
starts = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
durations = st.integers(min_value=1, max_value=3 * 24 * 3600)


@settings(max_examples=200, deadline=None)
@given(start=starts, seconds=durations, calendar=calendars)
def test_the_deadline_is_exactly_the_target_of_working_time_away(
    start: datetime, seconds: int, calendar: sla_policy.BusinessHours
) -> None:
    due = sla_policy.add_working_time(start, seconds, calendar)
    assert due >= start + timedelta(seconds=seconds)  # working time is a part of wall-clock time
    assert sla_policy.working_time_between(start, due, calendar) == timedelta(seconds=seconds)
    # The deadline falls inside a working window of a working day.
    window = calendar.window(due.astimezone(ZoneInfo(calendar.timezone)).date())
    assert window is not None and window[0] < due <= window[1]


@settings(max_examples=100, deadline=None)
@given(start=starts, first=durations, second=durations, calendar=calendars)
def test_adding_working_time_in_two_steps_equals_one_step(
    start: datetime, first: int, second: int, calendar: sla_policy.BusinessHours
) -> None:
    in_two = sla_policy.add_working_time(sla_policy.add_working_time(start, first, calendar), second, calendar)
    assert in_two == sla_policy.add_working_time(start, first + second, calendar)
