"""The kit's Kafka clients through the suite broker's SASL listeners: every mechanism, over TLS too, and
what a wrong password or an untrusted broker certificate does."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from leadflow_kit.kafka import ProducerHolder, kafka_client_options
from leadflow_kit.settings import ServiceSettings
from leadflow_stack.kafka import SASL_MECHANISMS
from leadflow_stack.pytest_plugin import Infra

pytestmark = pytest.mark.integration


def _settings(infra: Infra, mechanism: str, *, without: str = "", **overrides: Any) -> ServiceSettings:
    env = {key.lower(): value for key, value in infra.sasl_env(mechanism, **overrides).items() if key != without}
    return ServiceSettings(service_name="kit-sasl", kafka_request_timeout_ms=3000, **env)


@pytest.mark.parametrize(("mechanism", "tls"), [*((m, False) for m in SASL_MECHANISMS), ("SCRAM-SHA-512", True)])
async def test_a_record_goes_through_the_sasl_listener(infra: Infra, mechanism: str, tls: bool) -> None:
    topic = f"{infra.new_topic_prefix('sasl')}records"
    await infra.create_topic(topic, partitions=1)
    settings = _settings(infra, mechanism, tls=tls)
    assert settings.kafka_security_protocol == ("SASL_SSL" if tls else "SASL_PLAINTEXT")
    producers = ProducerHolder(settings)
    try:
        await producers.ping(timeout=10)
        producer = await producers.get()
        await producer.send_and_wait(topic, b"over " + mechanism.encode(), key=b"lead-1")
    finally:
        await producers.close()

    consumer = AIOKafkaConsumer(topic, **kafka_client_options(settings), group_id=f"sasl-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"lead-1", b"over " + mechanism.encode())


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"password": "not-the-password"}, id="wrong-password"),
        pytest.param({"password": "not-the-password", "tls": True}, id="wrong-password-over-tls"),
        # Without the broker's CA file the system's CAs are used, and none of them signed it.
        pytest.param({"tls": True, "without": "KAFKA_SSL_CAFILE"}, id="untrusted-broker-certificate"),
    ],
)
async def test_clients_that_cannot_authenticate_never_connect(infra: Infra, settings: dict[str, Any]) -> None:
    producers = ProducerHolder(_settings(infra, "SCRAM-SHA-256", **settings))
    try:
        with pytest.raises(Exception) as failure:
            await producers.ping(timeout=10)
        assert type(failure.value).__name__ in ("KafkaConnectionError", "TimeoutError"), repr(failure.value)
    finally:
        await producers.close()
