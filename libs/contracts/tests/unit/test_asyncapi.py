"""docs/asyncapi.json is the AsyncAPI 3.0 document of the contract: current, and whole."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from leadflow_contracts import topics
from leadflow_contracts.asyncapi import RECEIVERS, SENDERS, render_text
from leadflow_contracts.envelope import encode_headers, new_event
from leadflow_contracts.events import EVENT_MODELS, TOPIC_OF, PrivacyErasureCompleted

DOCUMENT = Path(__file__).resolve().parents[4] / "docs" / "asyncapi.json"
NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return document


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_the_committed_document_is_current() -> None:
    assert DOCUMENT.read_text() == render_text(), (
        "docs/asyncapi.json is stale: run `uv run python -m leadflow_contracts.asyncapi docs/asyncapi.json`")


def test_it_has_the_asyncapi_3_shape_and_every_reference_resolves() -> None:
    document = committed()
    assert document["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(document["info"])
    assert set(document) <= {"asyncapi", "id", "info", "servers", "defaultContentType", "channels", "operations",
                             "components"}
    for name, channel in document["channels"].items():
        assert NAME.match(name) and isinstance(channel["address"], str) and channel["messages"], name
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]
    for name, operation in document["operations"].items():
        assert NAME.match(name) and operation["action"] in ("send", "receive"), name
        channel_ref = operation["channel"]["$ref"]
        for message in operation["messages"]:
            # AsyncAPI 3: an operation's messages are its channel's.
            assert message["$ref"].startswith(f"{channel_ref}/messages/"), name
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(document))
    assert refs
    for ref in refs:
        assert resolve(document, ref) is not None, ref
    for name, message in document["components"]["messages"].items():
        assert {"name", "payload", "headers"} <= set(message), name
        assert message["headers"]["type"] == "object"


def test_every_topic_event_header_and_key_is_described() -> None:
    document = committed()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(topics.all_topics())
    messages = document["components"]["messages"]
    for event_type, model in EVENT_MODELS.items():
        message = messages[event_type.replace(".", "_")]
        assert message["name"] == event_type
        assert resolve(document, message["payload"]["$ref"]) == resolve(
            {"components": {"schemas": document["components"]["schemas"]}},
            f"#/components/schemas/{model.__name__}")
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        channel = next(c for c in document["channels"].values() if c["address"] == TOPIC_OF[event_type])
        assert event_type.replace(".", "_") in channel["messages"]
        ends = "/" + event_type.replace(".", "_")
        by_action = {action: {o["title"].split()[0] for o in document["operations"].values()
                              if o["action"] == action and o["messages"][0]["$ref"].endswith(ends)}
                     for action in ("send", "receive")}
        assert by_action == {"send": set(SENDERS[event_type]), "receive": set(RECEIVERS[event_type])}


def test_the_headers_are_those_the_envelope_sets() -> None:
    now = datetime.now(UTC)
    event = new_event(PrivacyErasureCompleted(erasure_id="e1", service="sla", rows_erased=2, completed_at=now),
                      source="sla", subject="e1")
    headers = committed()["components"]["messages"]["privacy_erasure_completed_v1"]["headers"]
    sent = {name for name, _ in encode_headers(event)}
    assert set(headers["required"]) == sent
    assert sent | {"ce_leadcapturedat"} == set(headers["properties"])
