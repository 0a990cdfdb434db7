"""Republish dead-lettered events from ``<topic>.dlq`` back to ``<topic>``.

    python deploy/replay_dlq.py --bootstrap-servers kafka:9092 --topic leads.enriched [--lead-id ID] [--dry-run]

Each event goes back with its original key, value and ``ce_*`` headers; the ``dlq_*`` headers
the consumer added are dropped. Consumers deduplicate by event id and a dead-lettered event was
never recorded as processed, so the copy is handled exactly once, and replaying twice is harmless.
The DLQ is read from its beginning up to its end at start time. See docs/runbook.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

DLQ_HEADER_PREFIX = "dlq_"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str
    event_id: str
    error: str
    replayed: bool


async def _dlq_partitions(bootstrap_servers: str, dlq: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([dlq])
    finally:
        await admin.close()
    for topic in described:
        if topic.get("topic", topic.get("name")) == dlq and not topic["error_code"]:
            return [TopicPartition(dlq, p["partition"]) for p in topic["partitions"]]
    raise SystemExit(f"topic {dlq} does not exist on {bootstrap_servers}")


async def replay_dead_letters(
    bootstrap_servers: str, topic: str, *, lead_id: str | None = None, dry_run: bool = False
) -> list[DeadLetter]:
    """Republish the dead letters of ``topic`` (optionally only one lead's); returns what was seen."""
    dlq = f"{topic}.dlq"
    partitions = await _dlq_partitions(bootstrap_servers, dlq)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True)
    await consumer.start()
    await producer.start()
    seen: list[DeadLetter] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # Stop at today's end so a replay that fails again cannot loop forever.
        end = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if end[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    key = (record.key or b"").decode()
                    headers = {name: value for name, value in record.headers}
                    wanted = lead_id is None or key == lead_id
                    if wanted and not dry_run:
                        kept = [(n, v) for n, v in record.headers if not n.startswith(DLQ_HEADER_PREFIX)]
                        await producer.send_and_wait(topic, value=record.value, key=record.key, headers=kept)
                    if wanted:
                        seen.append(
                            DeadLetter(
                                partition=tp.partition,
                                offset=record.offset,
                                key=key,
                                event_id=headers.get("ce_id", b"").decode(),
                                error=headers.get("dlq_error_type", b"").decode(),
                                replayed=not dry_run,
                            )
                        )
            pending = {tp for tp in pending if await consumer.position(tp) < end[tp]}
    finally:
        await producer.stop()
        await consumer.stop()
    return seen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True, help="the original topic, e.g. leads.enriched (with any prefix)")
    parser.add_argument("--lead-id", help="replay only this lead's dead letters (the Kafka key)")
    parser.add_argument("--dry-run", action="store_true", help="list the dead letters, publish nothing")
    args = parser.parse_args(argv)
    letters = asyncio.run(
        replay_dead_letters(args.bootstrap_servers, args.topic, lead_id=args.lead_id, dry_run=args.dry_run)
    )
    verb = "would replay" if args.dry_run else "replayed"
    for letter in letters:
        sys.stdout.write(
            f"{verb} {args.topic}.dlq[{letter.partition}]@{letter.offset} lead={letter.key} "
            f"event={letter.event_id} error={letter.error}\n"
        )
    sys.stdout.write(f"{len(letters)} dead letter(s) {verb} to {args.topic}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
