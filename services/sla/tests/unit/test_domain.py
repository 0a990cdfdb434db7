"""SLA rules without I/O: working-time arithmetic, policies, thresholds, funnel math."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from leadflow_contracts import DataQuality, LeadContact, LeadDelivered, LeadEnriched, LeadProfile, LeadSla, LeadTouched
from leadflow_sla import domain

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def test_escalation_starts_at_the_breach_limit() -> None:
    assert not domain.should_escalate(1, 2)
    assert domain.should_escalate(2, 2)
    assert domain.should_escalate(3, 2)
    assert not domain.should_escalate(5, 0)


def test_stages_of_events() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert domain.stage_of(LeadTouched(lead_id="l", touch_id="t", touch_type="contacted", occurred_at=now)) == "touched"
    breach = LeadSla(lead_id="l", clock_id="c", kind="breach", tier="hot", started_at=now, due_at=now)
    assert domain.stage_of(breach) == "sla_breach"
    delivered = LeadDelivered(lead_id="l", webhook_id="w", subscription_id="s", event_type_delivered="lead.routed.v1",
                              status="delivered", attempt=1, at=now)
    assert domain.stage_of(delivered) == "webhook_delivered"
    assert domain.stage_of(delivered.model_copy(update={"status": "dead"})) == "webhook_failed"
    assert domain.stage_rank("captured") < domain.stage_rank("enriched") < domain.stage_rank("routed")


def _record(subject: str, event_id: str, stage: str, *, measured: bool = True, event_type: str | None = None,
            also: str | None = None) -> domain.TimelineRecord:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    return domain.TimelineRecord(
        lead_ids=[subject] if also is None else [subject, also], event_id=event_id, event_type=f"lead.{stage}",
        stage=stage, source="test", at=now, lead_captured_at=now,
        details={"event_type": event_type} if event_type else {}, facts_lead_id=subject, subject=subject,
        measured=measured,
        earlier_event_type_prefix=domain.ROUTED_WEBHOOK_PREFIX if stage == "webhook_delivered" else None)


def test_a_batchs_candidates_for_firsts_are_the_measured_events_no_earlier_one_of_the_batch_precedes() -> None:
    batch = [
        _record("a", "1", "enriched"),
        _record("a", "2", "enriched"),  # behind 1
        _record("b", "3", "enriched"),  # another lead
        _record("a", "4", "scored", measured=False),
        _record("a", "5", "webhook_delivered", event_type="lead.sla.breached", measured=False),
        _record("a", "6", "webhook_delivered", event_type="lead.routed.v1"),  # a breach's webhook does not count
        _record("a", "7", "webhook_delivered", event_type="lead.routed.v1"),  # behind 6
        _record("c", "8", "scored", also="a"),  # on a's timeline too, but c's first
        _record("a", "9", "scored"),  # behind 4 (measured or not, it is on a's timeline) and 8 (also on a's)
    ]
    assert domain.firsts_within_batch(batch) == [0, 2, 5, 7]
    assert domain.firsts_within_batch([]) == []


def test_percentiles_interpolate_between_ranks() -> None:
    assert domain.percentile([], 0.5) is None
    assert domain.percentile([7.0], 0.9) == 7.0
    assert domain.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    # p90 of 10..100 step 10: position 8.1 -> 90 + 0.1 * 10
    assert domain.percentile([float(v) for v in range(100, 0, -10)], 0.9) == 91.0


def test_funnel_counts_every_stage_a_lead_reached() -> None:
    rank = domain.FUNNEL_RANK
    leads = [
        domain.FunnelLead("ads", rank["converted"], 60.0, "met"),
        domain.FunnelLead("ads", rank["sql"], 120.0, "breached"),
        domain.FunnelLead("ads", rank["mql"], None, None),
        domain.FunnelLead("seo", rank["captured"], None, None),
    ]
    groups, total = domain.funnel(leads)
    assert [g["group"] for g in groups] == ["ads", "seo"]
    ads = groups[0]
    assert ads["counts"] == {"captured": 3, "mql": 3, "accepted": 2, "sql": 2, "opportunity": 1, "converted": 1}
    assert ads["conversion_rates"]["mql_to_sql"] == round(2 / 3, 4)
    assert ads["speed_to_lead_seconds"] == {"touched": 2, "median": 90.0, "p90": 114.0}
    assert ads["sla"] == {"met": 1, "breached": 1, "compliance_pct": 50.0}
    assert total["counts"]["captured"] == 4
    assert groups[1]["conversion_rates"]["mql_to_sql"] is None
    assert groups[1]["sla"]["compliance_pct"] is None


def test_changed_facts_are_the_facts_replace_makes() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    facts = domain.LeadFacts("l", captured_at=at, tier="warm", stage_rank=2, email="ada@initech.example")
    for changes in ({}, {"tier": "hot", "score": 91.5, "updated_at": at}, {"tier": None, "email": None},
                    {"deal_amount": Decimal("10.50"), "lost_at": at, "merged_into": "m"}):
        assert domain.changed_facts(facts, changes) == replace(facts, **changes)
    assert domain.changed_facts(facts, {"tier": "hot"}) is not facts
    assert facts.tier == "warm"  # the facts it started from are left as they were
    with pytest.raises(TypeError):
        domain.changed_facts(facts, {"no_such_column": 1})


def test_an_enrichment_of_a_repeat_fill_goes_on_both_leads_timelines_and_other_events_on_their_leads() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    repeat = LeadEnriched(lead_id="first", captured_lead_id="repeat", duplicate_of="first", form_key="demo",
                          profile=LeadProfile(), original=LeadContact(), quality=DataQuality(score=1))
    assert domain.lead_ids_of("first", repeat) == ["first", "repeat"]
    assert domain.lead_ids_of("first", repeat.model_copy(update={"captured_lead_id": "first"})) == ["first"]
    touch = LeadTouched(lead_id="l", touch_id="t", touch_type="contacted", occurred_at=now)
    assert domain.lead_ids_of("l", touch) == ["l"]
    assert domain.lead_ids_of("other", touch) == ["other", "l"]
