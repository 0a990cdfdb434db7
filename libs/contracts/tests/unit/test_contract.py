from datetime import UTC, datetime
from pathlib import Path

import pytest

from leadflow_contracts import (
    Event,
    LeadCaptured,
    LeadContact,
    LeadRouted,
    MalformedEvent,
    decode,
    encode_body,
    encode_headers,
    follow_up,
    new_event,
)
from leadflow_contracts.schemas import render_schemas
from leadflow_contracts.topics import all_topics, topic_config

DOCS_EVENTS = Path(__file__).resolve().parents[4] / "docs" / "events"


def captured() -> Event[LeadCaptured]:
    data = LeadCaptured(
        lead_id="L1",
        form_key="demo",
        submitted_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        contact=LeadContact(email="ada@example.com", first_name="Ada"),
    )
    return new_event(data, source="capture", subject="L1", lead_captured_at=data.submitted_at)


def test_an_event_survives_the_kafka_round_trip() -> None:
    event = captured()
    back = decode(encode_body(event), encode_headers(event))
    assert back == event.model_copy(update={"data": event.data})
    assert back.type == "lead.captured.v1"
    assert back.topic == "leads.captured"
    assert isinstance(back.data, LeadCaptured)
    assert back.data.contact.email == "ada@example.com"


def test_follow_up_keeps_correlation_and_capture_time() -> None:
    cause = captured()
    routed = follow_up(cause, LeadRouted(lead_id="L1", assignment_id="A1", reason="rr"), source="routing")
    assert routed.correlation_id == cause.correlation_id
    assert routed.lead_captured_at == cause.lead_captured_at
    assert routed.type == "lead.routed.v1"
    assert routed.id != cause.id


def test_unknown_type_and_bad_body_are_malformed() -> None:
    event = captured()
    headers = [(k, b"lead.nope.v9" if k == "ce_type" else v) for k, v in encode_headers(event)]
    with pytest.raises(MalformedEvent):
        decode(encode_body(event), headers)
    with pytest.raises(MalformedEvent):
        decode(b"{not json", encode_headers(event))
    with pytest.raises(MalformedEvent):
        decode(b"{}", encode_headers(event))


def test_newer_producers_may_add_fields() -> None:
    event = captured()
    body = encode_body(event).replace(b'{"lead_id"', b'{"added_later":1,"lead_id"')
    assert decode(body, encode_headers(event)).data == event.data


def test_every_topic_has_a_dead_letter_topic() -> None:
    names = all_topics("t1.")
    assert "t1.leads.captured" in names and "t1.leads.captured.dlq" in names
    assert "t1.privacy.requests" in names and "t1.privacy.requests.dlq" in names
    assert len(names) == 20


def test_only_the_sla_policies_topic_is_compacted() -> None:
    assert topic_config("t1.sla.policies", "t1.") == {"cleanup.policy": "compact"}
    assert topic_config("t1.sla.policies.dlq", "t1.") == {}
    assert topic_config("t1.leads.routed", "t1.") == {}


def test_committed_json_schemas_match_the_models() -> None:
    rendered = render_schemas()
    committed = {p.name: p.read_text() for p in DOCS_EVENTS.glob("*.json")}
    stale = sorted(name for name in rendered if committed.get(name) != rendered[name])
    assert not stale, (
        f"docs/events is stale for {stale}: run `uv run python -m leadflow_contracts.schemas docs/events`"
    )
    assert set(committed) == set(rendered)
