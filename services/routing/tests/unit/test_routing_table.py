"""Routing decisions over a roster spread across time zones, with OOO and capacity — pure domain,
the clock injected as ``now``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from leadflow_kit.clock import FrozenClock
from leadflow_routing import domain
from leadflow_routing.domain import Condition, OutOfOffice, Rep, Rule, RuleSet, Team


def hours(start: str, end: str, days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")) -> Any:
    return domain.parse_working_hours({d: [f"{start}-{end}"] for d in days})


NINE_TO_FIVE = hours("09:00", "17:00")
MONDAY = date(2026, 11, 23)

REPS = [
    Rep("rep-na-1", timezone="America/New_York", team_id="na", working_hours=NINE_TO_FIVE,
        out_of_office=(OutOfOffice(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)),)),
    Rep("rep-na-2", timezone="America/New_York", team_id="na", working_hours=NINE_TO_FIVE, territories=("US", "CA")),
    Rep("rep-na-3", timezone="America/Los_Angeles", team_id="na", working_hours=NINE_TO_FIVE,
        territories=("US-CA", "US-WA")),
    Rep("rep-emea-1", timezone="Europe/Berlin", team_id="emea", working_hours=NINE_TO_FIVE, daily_capacity=3,
        assigned_today=3, assigned_day=MONDAY),
    Rep("rep-emea-2", timezone="Europe/London", team_id="emea", working_hours=NINE_TO_FIVE, max_open_leads=10,
        open_leads=4),
    Rep("rep-emea-3", timezone="Europe/Paris", team_id="emea", max_open_leads=5, open_leads=5),
    Rep("rep-apac-1", timezone="Asia/Tokyo", team_id="apac", working_hours=hours("09:00", "18:00")),
    Rep("rep-apac-2", timezone="Australia/Sydney", team_id="apac", working_hours=NINE_TO_FIVE),
    Rep("rep-ent-1", timezone="America/Chicago", team_id="ent"),
    Rep("rep-partner", timezone="UTC",
        out_of_office=(OutOfOffice(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC)),)),
    Rep("rep-gone", timezone="UTC", team_id="ent", active=False),
]
TEAMS = {
    "na": Team("na", fallback_queue="na-overflow"),
    "emea": Team("emea"),
    "apac": Team("apac"),
    "ent": Team("ent"),
}
RULES = RuleSet(
    version=1,
    fallback_queue="unassigned",
    rules=(
        Rule("partner", match="any", rep_id="rep-partner",
             conditions=(Condition("source", "eq", "partner"), Condition("form", "eq", "partner-program"))),
        Rule("enterprise", team_id="ent", conditions=(Condition("employee_count", "gte", 1000),)),
        Rule("emea", team_id="emea", conditions=(Condition("region", "eq", "EMEA"),)),
        Rule("apac", team_id="apac", conditions=(Condition("region", "eq", "APAC"),)),
        Rule("na", team_id="na", conditions=(Condition("country", "in", ["US", "CA"]),)),
        Rule("disabled-catch-all", team_id="na", enabled=False),
    ),
)


def lead(tier: str = "warm", country: str | None = "US", state: str | None = None, employees: int | None = 50,
         source: str | None = None, form: str = "demo") -> dict[str, Any]:
    return {
        "lead_id": "l", "tier": tier, "score": 60, "fit_grade": "B", "form_key": form,
        "profile": {"country": country, "state": state, "employee_count": employees},
        "attribution": {"utm_source": source},
    }


def route(data: dict[str, Any], now: datetime) -> str:
    """Rules then the team's strategy (no rotation state): a rep id or ``queue:<name>``."""
    fields = domain.lead_fields(data)
    match = domain.match_rules(RULES, fields)
    if match.rule is None:
        return f"queue:{RULES.fallback_queue}"
    if match.rule.rep_id:
        rep = next(r for r in REPS if r.id == match.rule.rep_id)
        return rep.id if domain.unavailability(rep, now, tier=data["tier"]) is None else f"queue:{RULES.fallback_queue}"
    team = TEAMS[match.rule.team_id or ""]
    pick = domain.pick_rep(team, [r for r in REPS if r.team_id == team.id], fields, now, tier=data["tier"])
    return pick.rep_id or f"queue:{team.fallback_queue or RULES.fallback_queue}"


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return FrozenClock(datetime(2026, 11, day, hour, minute, tzinfo=UTC)).now()


CASES = [
    # North America — rep-na-1 is out of office Mon 23 → Wed 25; hot leads need working hours.
    ("warm NY lead while na-1 is OOO", lead(state="NY"), utc(23, 18), "rep-na-2"),
    ("warm NY lead after the OOO", lead(state="NY"), utc(25, 18), "rep-na-1"),
    ("hot CA lead, 09:00 in New York", lead("hot", state="CA"), utc(23, 14), "rep-na-2"),
    ("hot CA lead, 11:30 NY / 08:30 LA", lead("hot", state="CA"), utc(23, 16, 30), "rep-na-2"),
    ("hot CA lead, NY closed, LA open", lead("hot", state="CA"), utc(23, 22, 30), "rep-na-3"),
    ("hot TX lead, NY closed, LA not its territory", lead("hot", state="TX"), utc(23, 22, 30), "queue:na-overflow"),
    ("hot CA lead at night everywhere", lead("hot", state="CA"), utc(24, 2), "queue:na-overflow"),
    ("warm CA lead at night: hours bind only hot leads", lead(state="CA"), utc(24, 2), "rep-na-2"),
    ("hot lead on a Saturday", lead("hot", state="CA"), utc(28, 18), "queue:na-overflow"),
    ("warm lead on a Saturday", lead(state="CA"), utc(28, 18), "rep-na-1"),
    ("hot Canadian lead", lead("hot", country="CA"), utc(23, 18), "rep-na-2"),
    ("cold WA lead during na-1 OOO", lead("cold", state="WA"), utc(24, 12), "rep-na-2"),
    # EMEA — emea-1 filled its 3 a day on Monday (Berlin day); emea-3 is at max open leads.
    ("warm German lead, emea-1 at capacity", lead(country="DE"), utc(23, 10), "rep-emea-2"),
    ("warm German lead the next day", lead(country="DE"), utc(24, 10), "rep-emea-1"),
    ("warm lead 23:30 UTC = Tuesday in Berlin", lead(country="DE"), utc(23, 23, 30), "rep-emea-1"),
    ("hot British lead, London at 10:00", lead("hot", country="GB"), utc(23, 10), "rep-emea-2"),
    ("hot French lead at 20:00 UTC", lead("hot", country="FR"), utc(23, 20), "queue:unassigned"),
    ("hot lead Tuesday 08:30 UTC (Berlin 09:30)", lead("hot", country="NL"), utc(24, 8, 30), "rep-emea-1"),
    ("cold Israeli lead", lead("cold", country="IL"), utc(23, 12), "rep-emea-2"),
    # APAC — Tokyo 09-18, Sydney 09-17 (AEDT, UTC+11).
    ("hot Japanese lead, Tokyo 10:00", lead("hot", country="JP"), utc(23, 1), "rep-apac-1"),
    ("hot Australian lead, Tokyo 17:30 / Sydney 19:30", lead("hot", country="AU"), utc(23, 8, 30), "rep-apac-1"),
    ("hot Singapore lead after hours in both", lead("hot", country="SG"), utc(23, 9, 30), "queue:unassigned"),
    ("hot lead, Sydney open, Tokyo not yet", lead("hot", country="NZ"), utc(22, 23, 0), "rep-apac-2"),
    ("warm Australian lead after hours", lead(country="AU"), utc(23, 9, 30), "rep-apac-1"),
    # Enterprise beats region (rule order); inactive reps are skipped.
    ("enterprise US lead", lead(employees=5000), utc(23, 18), "rep-ent-1"),
    ("enterprise German lead", lead(country="DE", employees=2000), utc(23, 3), "rep-ent-1"),
    ("1,000 employees is enterprise", lead("hot", country="JP", employees=1000), utc(23, 15), "rep-ent-1"),
    ("999 employees is not", lead("hot", country="JP", employees=999), utc(23, 1), "rep-apac-1"),
    # Partner rule (any-of) names a rep directly; that rep's OOO sends to the fallback.
    ("partner-sourced US lead", lead(source="partner"), utc(23, 18), "rep-partner"),
    ("partner form, German lead", lead(country="DE", form="partner-program"), utc(23, 18), "rep-partner"),
    ("partner lead while the partner rep is OOO", lead(source="Partner"), datetime(2026, 12, 2, 18, tzinfo=UTC),
     "queue:unassigned"),
    # Nothing matches.
    ("Brazilian lead: no rule", lead(country="BR"), utc(23, 18), "queue:unassigned"),
    ("no country at all", lead(country=None), utc(23, 18), "queue:unassigned"),
    ("unknown employee count stays regional", lead(country="GB", employees=None), utc(23, 12), "rep-emea-2"),
]


@pytest.mark.parametrize(("case", "data", "now", "expected"), CASES, ids=[c[0] for c in CASES])
def test_routing_table(case: str, data: dict[str, Any], now: datetime, expected: str) -> None:
    assert route(data, now) == expected, case


def test_the_table_covers_at_least_thirty_leads() -> None:
    assert len(CASES) >= 30
    zones = {r.timezone for r in REPS}
    assert len(zones) >= 6


def test_skip_reasons_are_recorded_for_every_candidate() -> None:
    team = TEAMS["emea"]
    reps = [r for r in REPS if r.team_id == "emea"]
    pick = domain.pick_rep(team, reps, domain.lead_fields(lead("hot", country="FR")), utc(23, 20), tier="hot")
    assert pick.rep_id is None
    assert {c.rep_id: c.skipped for c in pick.candidates} == {
        "rep-emea-1": "outside_working_hours",
        "rep-emea-2": "outside_working_hours",
        "rep-emea-3": "max_open_leads",
    }
    warm = domain.pick_rep(team, reps, domain.lead_fields(lead(country="FR")), utc(23, 20), tier="warm")
    assert {c.rep_id: c.skipped for c in warm.candidates} == {
        "rep-emea-1": "daily_capacity", "rep-emea-2": None, "rep-emea-3": "max_open_leads",
    }
