"""One envelope for every event, carried CloudEvents-style on Kafka.

The envelope attributes travel as ``ce_*`` Kafka headers (CloudEvents' Kafka binary mode) and the
body is the JSON of ``data``; the Kafka key is the lead id so one lead's events keep their order.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadflow_contracts.events import TOPIC_OF, EventData, model_for

D = TypeVar("D", bound=EventData)

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
MAX_EVENT_BYTES = 64 * 1024

Headers = list[tuple[str, bytes]]


class Event(BaseModel, Generic[D]):
    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    source: str
    time: datetime
    subject: str = Field(description="The lead id (an activity without one: the visitor id, else an opaque "
                                     "person id derived from the email; a privacy request: its id); never "
                                     "personal data")
    correlation_id: str
    lead_captured_at: datetime | None = None
    data: D

    @property
    def topic(self) -> str:
        return TOPIC_OF[self.type]


# Parametrized once: ``Event[EventData]`` looks its class up in pydantic's generic cache on every
# use, which cost as much as validating the event itself.
_ANY_EVENT = Event[EventData]


class MalformedEvent(ValueError):
    """A Kafka record that is not a readable LeadFlow event; it goes to the dead-letter topic."""


def new_event(
    data: D,
    *,
    source: str,
    subject: str,
    correlation_id: str | None = None,
    lead_captured_at: datetime | None = None,
    time: datetime | None = None,
    event_id: str | None = None,
) -> Event[D]:
    return Event[D](
        id=event_id or str(uuid.uuid4()),
        type=type(data).EVENT_TYPE,
        source=source,
        time=time or datetime.now(UTC),
        subject=subject,
        correlation_id=correlation_id or str(uuid.uuid4()),
        lead_captured_at=lead_captured_at,
        data=data,
    )


def follow_up(
    cause: Event[Any],
    data: D,
    *,
    source: str,
    subject: str | None = None,
    time: datetime | None = None,
) -> Event[D]:
    """An event caused by another: same correlation id and lead capture time."""
    return new_event(
        data,
        source=source,
        subject=subject or cause.subject,
        correlation_id=cause.correlation_id,
        lead_captured_at=cause.lead_captured_at,
        time=time,
    )


def encode_body(event: Event[Any]) -> bytes:
    body: bytes = event.data.model_dump_json(exclude_none=False).encode()
    if len(body) > MAX_EVENT_BYTES:
        raise ValueError(f"event {event.type} for {event.subject} is {len(body)} bytes, over {MAX_EVENT_BYTES}")
    return body


def encode_headers(event: Event[Any]) -> Headers:
    headers: Headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event.id.encode()),
        ("ce_type", event.type.encode()),
        ("ce_source", event.source.encode()),
        ("ce_time", event.time.isoformat().encode()),
        ("ce_subject", event.subject.encode()),
        ("ce_correlationid", event.correlation_id.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if event.lead_captured_at is not None:
        headers.append(("ce_leadcapturedat", event.lead_captured_at.isoformat().encode()))
    return headers


def decode(body: bytes | None, headers: Headers | tuple[tuple[str, bytes], ...]) -> Event[EventData]:
    """Rebuild an event from a Kafka record, validating ``data`` against its versioned model."""
    attrs = {name: value.decode("utf-8", errors="replace") for name, value in headers}
    try:
        event_type = attrs["ce_type"]
        model = model_for(event_type)
        # Parsed and validated in one pass (pydantic-core's JSON reader): no intermediate dict, a fifth
        # less than orjson.loads then model_validate. A whole decode costs about 12 us.
        data = model.model_validate_json(body or b"null")
        return _ANY_EVENT(
            id=attrs["ce_id"],
            type=event_type,
            source=attrs["ce_source"],
            time=datetime.fromisoformat(attrs["ce_time"]),
            subject=attrs["ce_subject"],
            correlation_id=attrs.get("ce_correlationid") or attrs["ce_id"],
            lead_captured_at=(
                datetime.fromisoformat(attrs["ce_leadcapturedat"]) if attrs.get("ce_leadcapturedat") else None
            ),
            data=data,
        )
    except KeyError as exc:
        raise MalformedEvent(f"missing header or unknown type: {exc}") from exc
    except (ValueError, ValidationError) as exc:
        raise MalformedEvent(str(exc)) from exc
