"""The floor: what Kafka alone costs for LeadFlow's number of hops, with LeadFlow's client settings.

The pipeline is produce -> leads.captured -> enrichment -> leads.enriched -> scoring ->
leads.scored -> routing -> leads.routed -> (observer). The floor is the same shape with no
logic and no database: produce -> hop0 -> relay -> hop1 -> relay -> hop2 -> relay -> hop3 ->
(observer). Each relay is its own process, like each service, consumes with the kit's consumer
settings (fetch_max_wait_ms, max_poll_records, manual commit after the work) and produces with
the kit's producer settings (acks=all, idempotent, linger_ms=0), stamping ``ce_time`` as a
service stamps its event's time; ``ce_leadcapturedat`` travels unchanged. Every record leaves a
hop padded to the size of the pipeline's event at that stage (``PAYLOAD_BYTES``), so both chains
move the same bytes. The observer then measures the floor exactly as it measures the pipeline.

The durable floor (``--dsn``) is the least a durable pipeline can do per hop: for every polled
batch of a partition one PostgreSQL transaction (its records as effect rows in one statement, the
partition's next offset in the offset row, a commit with fsync on), then the produce. No inbox, no
outbox, no business logic: what is left is what durability itself costs. Its offsets live in the
database, as issue 17's design keeps them (the floor never restarts, so it never reads them back).

A relay process: ``python -m bench.floor --bootstrap B --src T0 --dst T1 --group G [--dsn D]``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bench import kafkaconf

HOPS = 4  # topics: leads.captured, leads.enriched, leads.scored, leads.routed
STAGES = ("captured", "enriched", "scored", "routed")
# Bytes of the pipeline's event value at each stage (the observer's "sz" in a pipeline run, rounded).
PAYLOAD_BYTES = {"captured": 740, "enriched": 1370, "scored": 1810, "routed": 700}

DURABLE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS floor_effect (id text PRIMARY KEY, body bytea NOT NULL, "
    "at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS floor_offset (grp text, topic text, part int, next_offset bigint NOT NULL, "
    "PRIMARY KEY (grp, topic, part))",
)
INSERT_EFFECTS = "INSERT INTO floor_effect (id, body) SELECT * FROM unnest($1::text[], $2::bytea[])"
SAVE_OFFSET = (
    "INSERT INTO floor_offset (grp, topic, part, next_offset) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (grp, topic, part) DO UPDATE SET next_offset = EXCLUDED.next_offset"
)


def padded(body: bytes, size: int) -> bytes:
    """``body`` as a JSON object of ``size`` bytes (a filler field), never shorter than it was."""
    filler = size - len(body) - len(b',"pad":""')
    if filler <= 0 or not body.endswith(b"}"):
        return body
    return body[:-1] + b',"pad":"' + b"x" * filler + b'"}'


def floor_topics(prefix: str) -> dict[str, str]:
    """stage -> topic, named after the pipeline stage each hop stands for."""
    return {stage: f"{prefix}hop{i}.{stage}" for i, stage in enumerate(STAGES)}


async def relay(bootstrap: str, src: str, dst: str, group: str, dsn: str | None = None,
                payload_bytes: int = 0) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    consumer = AIOKafkaConsumer(src, **kafkaconf.consumer_kwargs(bootstrap, group))
    producer = AIOKafkaProducer(**kafkaconf.producer_kwargs(bootstrap))
    pool = await _durable_pool(dsn) if dsn else None
    await producer.start()
    await consumer.start()
    try:
        await producer.partitions_for(dst)

        async def forward(tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
            if pool is not None:
                await _save_batch(pool, group, tp, records)
            pending = []
            for record in records:
                headers = [(k, v) for k, v in record.headers if k != "ce_time"]
                headers.append(("ce_time", datetime.now(UTC).isoformat().encode()))
                value = padded(record.value or b"{}", payload_bytes)
                pending.append(await producer.send(dst, value=value, key=record.key, headers=headers))
            await asyncio.gather(*pending)
            if pool is None:
                await consumer.commit({tp: records[-1].offset + 1})

        announced = False
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            if not announced and consumer.assignment():
                sys.stdout.write("ready\n")
                sys.stdout.flush()
                announced = True
            if batches:
                await asyncio.gather(*(forward(tp, records) for tp, records in batches.items()))
    finally:
        await consumer.stop()
        await producer.stop()
        if pool is not None:
            await pool.close()


async def _durable_pool(dsn: str) -> asyncpg.Pool:
    # One connection per partition a relay may own: batches of different partitions commit side by side.
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        for statement in DURABLE_SCHEMA:
            await conn.execute(statement)
    return pool


async def _save_batch(pool: asyncpg.Pool, group: str, tp: TopicPartition,
                      records: list[ConsumerRecord[bytes, bytes]]) -> None:
    ids = [f"{tp.partition}:{record.offset}" for record in records]
    bodies = [record.value or b"" for record in records]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(INSERT_EFFECTS, ids, bodies)
        await conn.execute(SAVE_OFFSET, group, tp.topic, tp.partition, records[-1].offset + 1)


class FloorSource:
    """Produces the floor's 'form fills': one small record per lead into hop0."""

    def __init__(self, bootstrap: str, topic: str, payload_bytes: int = PAYLOAD_BYTES["captured"]) -> None:
        self.topic = topic
        self.body = padded(b'{"email":"bench@example.com","company":"Floor Ltd","country":"DE"}', payload_bytes)
        self.producer = AIOKafkaProducer(**kafkaconf.producer_kwargs(bootstrap))

    async def start(self) -> None:
        await self.producer.start()
        await self.producer.partitions_for(self.topic)

    async def send(self, lead_id: str) -> float:
        """Produce one record; returns the epoch time it was stamped with (its 'capture')."""
        now = datetime.now(UTC)
        stamp = now.isoformat().encode()
        future = await self.producer.send(
            self.topic, value=self.body, key=lead_id.encode(),
            headers=[("ce_time", stamp), ("ce_leadcapturedat", stamp)],
        )
        await future
        return now.timestamp()

    async def stop(self) -> None:
        await self.producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description="one relay of the floor chain")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--src", required=True)
    parser.add_argument("--dst", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--dsn", help="PostgreSQL: one transaction per polled batch (the durable floor)")
    parser.add_argument("--payload-bytes", type=int, default=0, help="pad each produced record to this size")
    args = parser.parse_args()
    try:
        import uvloop  # the services run on uvloop (uvicorn picks it), so the floor does too

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(relay(args.bootstrap, args.src, args.dst, args.group, args.dsn, args.payload_bytes))


if __name__ == "__main__":
    main()
