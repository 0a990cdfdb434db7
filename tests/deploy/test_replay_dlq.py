"""deploy/replay_dlq.py against the suite's real Kafka broker."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _load_replay_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("replay_dlq", ROOT / "deploy" / "replay_dlq.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


replay = _load_replay_module()


def _dead_letter_headers(event_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_id", event_id.encode()),
        ("ce_type", b"lead.enriched.v1"),
        ("ce_source", b"enrichment"),
        ("dlq_error_type", b"ValueError"),
        ("dlq_error_message", b"scoring model rejected: bad, data: here"),
        ("dlq_original_topic", b"leads.enriched"),
        ("dlq_consumer", b"scoring"),
        ("dlq_attempts", b"4"),
    ]


async def _read_all(bootstrap: str, topic: str, expected: int, timeout: float = 15.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
        # Anything beyond what we expect would be a duplicate replay.
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


@pytest.fixture
async def dead_letters(infra: Any) -> tuple[str, str]:
    prefix = infra.new_topic_prefix("replay")
    topic = f"{prefix}leads.enriched"
    await infra.create_topic(topic, partitions=3)
    await infra.create_topic(f"{topic}.dlq", partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        for lead, event_id in (("lead-a", "evt-1"), ("lead-b", "evt-2"), ("lead-a", "evt-3")):
            await producer.send_and_wait(
                f"{topic}.dlq",
                value=f'{{"event": "{event_id}"}}'.encode(),
                key=lead.encode(),
                headers=_dead_letter_headers(event_id),
            )
    finally:
        await producer.stop()
    return infra.bootstrap_servers, topic


async def test_dry_run_lists_dead_letters_and_publishes_nothing(dead_letters: tuple[str, str]) -> None:
    bootstrap, topic = dead_letters
    seen = await replay.replay_dead_letters(bootstrap, topic, dry_run=True)
    assert sorted(letter.event_id for letter in seen) == ["evt-1", "evt-2", "evt-3"]
    assert {letter.error for letter in seen} == {"ValueError"}
    assert not any(letter.replayed for letter in seen)
    assert await _read_all(bootstrap, topic, expected=1, timeout=3) == []


async def test_replays_one_lead_with_key_value_and_event_headers_without_dlq_headers(
    dead_letters: tuple[str, str],
) -> None:
    bootstrap, topic = dead_letters
    seen = await replay.replay_dead_letters(bootstrap, topic, lead_id="lead-a")
    assert sorted(letter.event_id for letter in seen) == ["evt-1", "evt-3"]

    records = await _read_all(bootstrap, topic, expected=2)
    assert sorted(r.key for r in records) == [b"lead-a", b"lead-a"]
    by_event = {dict(r.headers)["ce_id"]: r for r in records}
    assert sorted(by_event) == [b"evt-1", b"evt-3"]
    assert by_event[b"evt-1"].value == b'{"event": "evt-1"}'
    assert [name for name, _ in by_event[b"evt-1"].headers] == ["ce_id", "ce_type", "ce_source"]


async def test_cli_replays_everything_once(dead_letters: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    bootstrap, topic = dead_letters
    await asyncio.to_thread(replay.main, ["--bootstrap-servers", bootstrap, "--topic", topic])
    assert capsys.readouterr().out.splitlines()[-1] == f"3 dead letter(s) replayed to {topic}"
    records = await _read_all(bootstrap, topic, expected=3)
    assert sorted(dict(r.headers)["ce_id"] for r in records) == [b"evt-1", b"evt-2", b"evt-3"]


async def test_missing_dead_letter_topic_is_an_error(infra: Any) -> None:
    with pytest.raises(SystemExit, match="does not exist"):
        await replay.replay_dead_letters(infra.bootstrap_servers, f"{infra.new_topic_prefix('none')}leads.sla")
