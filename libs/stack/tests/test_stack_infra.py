"""The test infrastructure itself: a real broker and a real PostgreSQL, started by the suite."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from leadflow_contracts.topics import all_topics
from leadflow_stack import procs
from leadflow_stack.kafka import KafkaBroker, new_cluster_id, resolve_classpath
from leadflow_stack.pytest_plugin import Infra

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, request_timeout_ms=5000)
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), 15)
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        async with asyncio.timeout(20):
            while len(got) < expected:
                batches = await consumer.getmany(timeout_ms=200)
                got.extend((m.key, m.value) for msgs in batches.values() for m in msgs)
    finally:
        await consumer.stop()
    return got


async def test_topics_are_created_with_partitions_and_dead_letter_twins(infra: Infra) -> None:
    prefix = infra.new_topic_prefix("stack")
    created = await infra.create_topics(prefix, partitions=3)

    assert created == all_topics(prefix)
    assert f"{prefix}leads.captured.dlq" in created
    # Creating them again is harmless.
    await infra.create_topics(prefix, partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        assert await producer.partitions_for(f"{prefix}leads.captured") == {0, 1, 2}
    finally:
        await producer.stop()


async def _cleanup_policy(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    entries = {entry[0]: entry[1] for response in responses for resource in response.resources
               for entry in resource[4]}
    return str(entries["cleanup.policy"])


async def test_the_sla_policies_topic_is_compacted_and_the_lead_topics_are_not(infra: Infra) -> None:
    prefix = infra.new_topic_prefix("compacted")
    await infra.create_topics(prefix, partitions=1)
    assert await _cleanup_policy(infra.bootstrap_servers, f"{prefix}sla.policies") == "compact"
    assert await _cleanup_policy(infra.bootstrap_servers, f"{prefix}sla.policies.dlq") == "delete"
    assert await _cleanup_policy(infra.bootstrap_servers, f"{prefix}leads.routed") == "delete"


async def test_a_produced_message_is_consumed_back(infra: Infra) -> None:
    prefix = infra.new_topic_prefix("roundtrip")
    await infra.create_topics(prefix, partitions=3)
    topic = f"{prefix}leads.captured"

    await _produce(infra.bootstrap_servers, topic, b"lead-1", b'{"hello": "kafka"}')

    assert await _consume_all(infra.bootstrap_servers, topic, 1) == [(b"lead-1", b'{"hello": "kafka"}')]


async def test_a_fresh_database_is_created_and_queried(infra: Infra) -> None:
    url = await infra.new_database("stack_test")
    other = await infra.new_database("stack_test")
    assert url != other
    assert url.startswith("postgresql+asyncpg://leadflow:leadflow@127.0.0.1:")

    conn = await asyncpg.connect(Infra.asyncpg_dsn(url))
    try:
        await conn.execute("CREATE TABLE lead (id text PRIMARY KEY, email text NOT NULL)")
        await conn.execute("INSERT INTO lead VALUES ('l1', 'ada@example.com')")
        assert await conn.fetchval("SELECT email FROM lead WHERE id = 'l1'") == "ada@example.com"
        assert await conn.fetchval("SELECT current_user") == "leadflow"
    finally:
        await conn.close()
    # Idempotent: the same name again returns the same database, data intact.
    name = url.rsplit("/", 1)[1]
    assert await infra.stack.postgres.create_database(name) == url
    conn = await asyncpg.connect(Infra.asyncpg_dsn(url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM lead") == 1
    finally:
        await conn.close()


async def test_kafka_restart_keeps_topics_and_messages(infra: Infra) -> None:
    prefix = infra.new_topic_prefix("restart")
    await infra.create_topics(prefix, partitions=3)
    topic = f"{prefix}leads.routed"
    await _produce(infra.bootstrap_servers, topic, b"lead-before", b"before")

    await infra.stop_kafka()
    assert not procs.port_is_open(int(infra.bootstrap_servers.rsplit(":", 1)[1]))
    await infra.start_kafka()

    await _produce(infra.bootstrap_servers, topic, b"lead-after", b"after")
    got = await _consume_all(infra.bootstrap_servers, topic, 2)
    assert sorted(got) == [(b"lead-after", b"after"), (b"lead-before", b"before")]


def test_a_cluster_id_is_never_taken_for_an_option(tmp_path: Path) -> None:
    # Kafka's storage tool read an id starting with '-' as an option: one new stack in 64 failed.
    assert not any(new_cluster_id().startswith("-") for _ in range(5000))
    port, controller_port = procs.free_ports(2)
    broker = KafkaBroker(tmp_path / "kafka", port=port, controller_port=controller_port,
                         log_path=tmp_path / "kafka.log", marker_root=tmp_path)
    broker.base_dir.mkdir(parents=True)
    # An id file written by an older stack still formats.
    (broker.base_dir / "cluster.id").write_text("-" + new_cluster_id()[1:])
    broker.format(resolve_classpath())
    assert (broker.data_dir / "meta.properties").exists()
