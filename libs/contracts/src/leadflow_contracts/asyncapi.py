"""The AsyncAPI 3.0 document of the event contract, generated from the models into docs/asyncapi.json.

Run ``python -m leadflow_contracts.asyncapi [FILE]`` after changing a model, a topic or who sends or
receives what; a test fails while the committed document differs.

Records are CloudEvents in Kafka binary mode: the record value is the event's ``data``, the envelope
travels in ``ce_*`` headers (``envelope.encode_headers``), and the key is the subject.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from leadflow_contracts import topics
from leadflow_contracts.envelope import CONTENT_TYPE, SPEC_VERSION
from leadflow_contracts.events import EVENT_MODELS, TOPIC_OF

SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")
KAFKA_BINDING_VERSION = "0.5.0"

# Who sends and who receives each event type (docs/events.md, "Types and topics").
SENDERS: dict[str, tuple[str, ...]] = {
    "lead.captured.v1": ("capture",),
    "lead.activity.v1": ("capture",),
    "lead.enriched.v1": ("enrichment",),
    "lead.scored.v1": ("scoring",),
    "lead.routed.v1": ("routing",),
    "lead.delivered.v1": ("routing", "sla"),
    "lead.touched.v1": ("routing",),
    "lead.sla.v1": ("sla",),
    "lead.sla_started.v1": ("sla",),
    "privacy.erasure_requested.v1": ("capture",),
    "privacy.erasure_completed.v1": SERVICES,
    "sla.policy_changed.v1": ("sla",),
    "sla.calendar_changed.v1": ("sla",),
}
RECEIVERS: dict[str, tuple[str, ...]] = {
    "lead.captured.v1": ("enrichment", "routing", "sla"),
    "lead.activity.v1": ("scoring", "sla"),
    "lead.enriched.v1": ("scoring", "sla"),
    "lead.scored.v1": ("routing", "sla"),
    "lead.routed.v1": ("sla",),
    "lead.delivered.v1": ("sla",),
    "lead.touched.v1": ("scoring", "sla"),
    "lead.sla.v1": ("routing", "sla"),
    "lead.sla_started.v1": ("routing",),
    "privacy.erasure_requested.v1": SERVICES,
    "privacy.erasure_completed.v1": ("capture",),
    "sla.policy_changed.v1": ("routing",),
    "sla.calendar_changed.v1": ("routing",),
}
SUMMARIES: dict[str, str] = {
    "lead.captured.v1": "A form fill was stored: contact fields as typed, attribution, consent",
    "lead.activity.v1": "A behavioral event (page view, download, webinar, ...) by lead id, email or visitor id",
    "lead.enriched.v1": "Normalized profile, originals, account match, data quality, partial flag, duplicate merge",
    "lead.scored.v1": "Score, fit grade, engagement, tier, MQL flag, explanation, lifecycle stage transition",
    "lead.routed.v1": "Owner (or fallback queue), rule, strategy, reason; re-routes, escalations and kept owners",
    "lead.delivered.v1": "A webhook delivery's outcome (delivered / failed / dead)",
    "lead.touched.v1": "Accepted, contacted, meeting booked, disqualified, converted (the CRM's callback)",
    "lead.sla.v1": "An SLA warning or breach of a first-touch clock",
    "lead.sla_started.v1": "A first-touch clock was opened: tier, owner or queue, due time (routing tells the CRM)",
    "privacy.erasure_requested.v1": "Erase a person: their normalized email and every lead id of their fills",
    "privacy.erasure_completed.v1": "One service erased its rows of the request (rows_erased)",
    "sla.policy_changed.v1": "An SLA policy's terms (tier, team, target, business hours), or None once deleted",
    "sla.calendar_changed.v1": "A rep's own business hours, or None once removed",
}
LEAD_KEY = ("The subject: the lead id; an activity without one: the visitor id, else `person-<HMAC of the "
            "email>`; never personal data. One lead's events share a partition, in order.")
PRIVACY_KEY = "The subject: the erasure request's id."
SLA_POLICIES_KEY = ("The subject: the policy id, or `rep:<rep id>` for a rep's calendar. The topic is compacted: "
                    "the latest record of each key is kept, and a deletion is followed by a tombstone.")
DLQ_HEADERS = ("dlq_error_type", "dlq_error_message", "dlq_original_topic", "dlq_original_partition",
               "dlq_original_offset", "dlq_consumer", "dlq_attempts", "dlq_failed_at")


def _name(text: str) -> str:
    return text.replace(".", "_")


def _headers(event_type: str) -> dict[str, Any]:
    """The headers ``envelope.encode_headers`` sets on a record of ``event_type``."""
    text = {"type": "string"}
    when = {"type": "string", "format": "date-time"}
    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_subject",
                     "ce_correlationid", "content-type"],
        "properties": {
            "ce_specversion": {"const": SPEC_VERSION, "description": "CloudEvents spec version"},
            "ce_id": {**text, "format": "uuid", "description": "Unique event id; consumers de-duplicate on it"},
            "ce_type": {"const": event_type, "description": "The event type with its version"},
            "ce_source": {"enum": list(SENDERS[event_type]), "description": "The service that emitted it"},
            "ce_time": {**when, "description": "When it happened (UTC)"},
            "ce_subject": {**text, "description": "The same as the record key"},
            "ce_correlationid": {**text, "description": "The same for every event caused by one form fill"},
            "ce_leadcapturedat": {**when, "description": "When the lead was captured (absent when unknown)"},
            "content-type": {"const": CONTENT_TYPE},
        },
    }


def _key(topic: str) -> dict[str, Any]:
    keys = {topics.PRIVACY: PRIVACY_KEY, topics.SLA_POLICIES: SLA_POLICIES_KEY}
    return {"type": "string", "description": keys.get(topic, LEAD_KEY)}


def _topic_binding(topic: str) -> dict[str, Any]:
    binding: dict[str, Any] = {"topic": topic, "bindingVersion": KAFKA_BINDING_VERSION}
    if topic in topics.COMPACTED_TOPICS:
        binding["topicConfiguration"] = {"cleanup.policy": ["compact"]}
    return binding


def render_document() -> dict[str, Any]:
    models = sorted({model for model in EVENT_MODELS.values()}, key=lambda m: m.__name__)
    _, definitions = models_json_schema([(m, "validation") for m in models],
                                        ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(sorted(definitions.get("$defs", {}).items()))
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type, model in EVENT_MODELS.items():
        topic = TOPIC_OF[event_type]
        message = _name(event_type)
        messages[message] = {
            "name": event_type,
            "title": event_type,
            "summary": SUMMARIES[event_type],
            "contentType": CONTENT_TYPE,
            "headers": _headers(event_type),
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
            "correlationId": {"location": "$message.header#/ce_correlationid"},
            "bindings": {"kafka": {"key": _key(topic), "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        channel = channels.setdefault(_name(topic), {
            "address": topic,
            "title": topic,
            "description": f"Events of {topic}; a topic prefix (tests) is prepended to the address.",
            "messages": {},
            "bindings": {"kafka": _topic_binding(topic)},
        })
        channel["messages"][message] = {"$ref": f"#/components/messages/{message}"}
        for action, services in (("send", SENDERS[event_type]), ("receive", RECEIVERS[event_type])):
            for service in services:
                operations[f"{service}_{action}s_{message}"] = {
                    "action": action,
                    "title": f"{service} {action}s {event_type}",
                    "channel": {"$ref": f"#/channels/{_name(topic)}"},
                    "messages": [{"$ref": f"#/channels/{_name(topic)}/messages/{message}"}],
                    **({"bindings": {"kafka": {"groupId": {"const": service},
                                               "bindingVersion": KAFKA_BINDING_VERSION}}}
                       if action == "receive" else {}),
                }
    messages["dead_letter"] = {
        "name": "dead-letter",
        "title": "A record that could not be handled",
        "summary": "The original record (value, key and ce_* headers as received), with what went wrong",
        "headers": {"type": "object", "required": list(DLQ_HEADERS),
                    "properties": {name: {"type": "string"} for name in DLQ_HEADERS}},
        "payload": {"description": "The original record's value, unchanged"},
    }
    for topic in topics.EVENT_TOPICS:
        dlq = topics.dead_letter_topic(topic)
        channels[_name(dlq)] = {
            "address": dlq,
            "title": dlq,
            "description": f"Records of {topic} a consumer could not decode, or whose handler still failed "
                           "after its retries.",
            "messages": {"dead_letter": {"$ref": "#/components/messages/dead_letter"}},
            "bindings": {"kafka": {"topic": dlq, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "LeadFlow events",
            "version": version("leadflow-contracts"),
            "description": "Every LeadFlow event: one Kafka record per CloudEvent in binary mode. The value is "
                           "the event's data (JSON), the envelope is in ce_* headers, the key is the subject. "
                           "Generated from libs/contracts by `python -m leadflow_contracts.asyncapi`; see "
                           "docs/events.md.",
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {"kafka": {"host": "localhost:9092", "protocol": "kafka",
                              "description": "The broker `make up` starts"}},
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages, "schemas": schemas},
    }


def render_text() -> str:
    return json.dumps(render_document(), indent=2) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/asyncapi.json")
    target.write_text(render_text())
    sys.stdout.write(f"{target}\n")
