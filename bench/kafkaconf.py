"""The Kafka client settings the services use, taken from the kit so the floor cannot drift."""

from __future__ import annotations

from typing import Any

from leadflow_kit.settings import ServiceSettings

_FIELDS = ServiceSettings.model_fields


def _default(name: str) -> Any:
    return _FIELDS[name].default


FETCH_MAX_WAIT_MS: int = _default("kafka_fetch_max_wait_ms")
MAX_POLL_RECORDS: int = _default("kafka_max_poll_records")
SESSION_TIMEOUT_MS: int = _default("kafka_session_timeout_ms")
REQUEST_TIMEOUT_MS: int = _default("kafka_request_timeout_ms")


def consumer_kwargs(bootstrap: str, group_id: str, *, offset_reset: str = "earliest") -> dict[str, Any]:
    """What ``leadflow_kit.consumer.ConsumerRunner`` passes to ``AIOKafkaConsumer``."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": offset_reset,
        "fetch_max_wait_ms": FETCH_MAX_WAIT_MS,
        "max_poll_records": MAX_POLL_RECORDS,
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": max(SESSION_TIMEOUT_MS // 3, 300),
        "request_timeout_ms": max(REQUEST_TIMEOUT_MS, SESSION_TIMEOUT_MS + 1000),
    }


def producer_kwargs(bootstrap: str) -> dict[str, Any]:
    """What ``leadflow_kit.kafka.ProducerHolder`` passes to ``AIOKafkaProducer``."""
    return {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 0,
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
    }
