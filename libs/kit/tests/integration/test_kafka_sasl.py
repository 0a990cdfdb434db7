"""The kit's Kafka clients through the suite broker's SASL listener: every mechanism, and a wrong password."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from leadflow_kit.kafka import ProducerHolder, kafka_client_options
from leadflow_kit.settings import ServiceSettings
from leadflow_stack.kafka import SASL_MECHANISMS
from leadflow_stack.pytest_plugin import Infra

pytestmark = pytest.mark.integration


def _settings(infra: Infra, mechanism: str, **overrides: str) -> ServiceSettings:
    env = {key.lower(): value for key, value in infra.sasl_env(mechanism, **overrides).items()}
    return ServiceSettings(service_name="kit-sasl", kafka_request_timeout_ms=3000, **env)  # type: ignore[arg-type]


@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
async def test_a_record_goes_through_the_sasl_listener(infra: Infra, mechanism: str) -> None:
    topic = f"{infra.new_topic_prefix('sasl')}records"
    await infra.create_topic(topic, partitions=1)
    settings = _settings(infra, mechanism)
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


async def test_a_wrong_password_never_connects(infra: Infra) -> None:
    producers = ProducerHolder(_settings(infra, "SCRAM-SHA-256", password="not-the-password"))
    try:
        with pytest.raises(Exception) as failure:
            await producers.ping(timeout=10)
        assert type(failure.value).__name__ in ("KafkaConnectionError", "TimeoutError"), repr(failure.value)
    finally:
        await producers.close()
