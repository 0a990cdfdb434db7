"""Services that reach Kafka only through the broker's SASL listener, as on managed Kafka.

capture, enrichment and scoring run as separate processes configured by their env settings
(``<PREFIX>_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT`` or ``SASL_SSL``, the SCRAM credentials, the CA
file); the test watches the topics through the PLAINTEXT listener of the same broker.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from leadflow_contracts import Event, EventData, topics
from leadflow_stack.errors import StackError
from leadflow_stack.pytest_plugin import Infra
from leadflow_stack.services import ServiceConfig
from leadflow_stack.testing import eventually, read_events

pytestmark = pytest.mark.e2e

PARTITIONS = 3


async def test_a_lead_travels_capture_enrichment_scoring_over_scram_and_tls(infra: Infra) -> None:
    prefix = infra.new_topic_prefix("sasl")
    await infra.create_topics(prefix, partitions=PARTITIONS)
    # enrichment as on managed Kafka: SCRAM-SHA-512 over TLS, trusting the broker's CA file.
    security = {"capture": infra.sasl_env("SCRAM-SHA-256"), "enrichment": infra.sasl_env("SCRAM-SHA-512", tls=True),
                "scoring": infra.sasl_env("SCRAM-SHA-256")}
    try:
        # Started side by side; only capture needs its demo data (the demo form).
        configs = await asyncio.gather(*(
            infra.start_service(name, env, topic_prefix=prefix, seed_demo=name == "capture", timeout=90)
            for name, env in security.items()
        ))
        urls = {config.name: config.url for config in configs}
        async with httpx.AsyncClient(timeout=10) as client:
            for url in urls.values():
                assert (await client.get(f"{url}/readyz")).json()["checks"]["kafka"] == "ok"
            response = await client.post(f"{urls['capture']}/v1/forms/demo/submissions",
                                         json={"email": "ada@example.org", "first_name": "Ada", "company": "Example"})
            assert response.status_code == 202, response.text
            lead_id = response.json()["lead_id"]

        def scored(events: list[Event[EventData]]) -> bool:
            return any(event.subject == lead_id for event in events)

        for topic in (topics.CAPTURED, topics.ENRICHED, topics.SCORED):
            await read_events(infra.bootstrap_servers, f"{prefix}{topic}", scored, timeout=60)
    finally:
        for name in security:
            await infra.stop_service(name)


async def test_a_wrong_password_leaves_services_running_and_reporting_kafka_unreachable(infra: Infra) -> None:
    prefix = infra.new_topic_prefix("sasl-denied")
    await infra.create_topics(prefix, partitions=PARTITIONS)
    denied = infra.sasl_env("SCRAM-SHA-256", password="not-the-password")
    try:
        # capture stays ready without its broker and keeps accepting leads into its outbox; enrichment
        # needs the broker to be ready, so it never is, yet it runs on.
        capture, enrichment = await asyncio.gather(
            infra.start_service("capture", denied, topic_prefix=prefix, seed_demo=True, timeout=90),
            infra.start_service("enrichment", denied, topic_prefix=prefix, timeout=20),
            return_exceptions=True,
        )
        assert isinstance(capture, ServiceConfig), capture
        assert isinstance(enrichment, StackError) and "not ready" in str(enrichment), enrichment
        enrichment_pid = infra.stack.services.running("enrichment")
        assert enrichment_pid is not None
        async with httpx.AsyncClient(timeout=10) as client:
            ready = await client.get(f"{capture.url}/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"]["kafka"].startswith("unreachable")
            response = await client.post(f"{capture.url}/v1/forms/demo/submissions",
                                         json={"email": "grace@example.org", "first_name": "Grace"})
            assert response.status_code == 202, response.text

            async def enrichment_readiness() -> httpx.Response | None:
                try:
                    return await client.get(f"{infra.service_url('enrichment')}/readyz")
                except httpx.TransportError:
                    return None  # still starting on a busy machine

            not_ready = await eventually(enrichment_readiness, timeout=30, interval=0.5)
            assert not_ready is not None
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"]["kafka"].startswith("unreachable")
        assert infra.stack.services.running("enrichment") == enrichment_pid
        assert infra.stack.services.running("capture") is not None
        # Nothing reached the broker: the accepted lead waits in capture's outbox.
        assert await records_on(infra, f"{prefix}{topics.CAPTURED}") == 0
    finally:
        for name in ("enrichment", "capture"):
            await infra.stop_service(name)


async def records_on(infra: Infra, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, partition) for partition in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return sum(ends.values())
