"""The floor: what Kafka alone costs for LeadFlow's number of hops, with LeadFlow's client settings.

The pipeline is produce -> leads.captured -> enrichment -> leads.enriched -> scoring ->
leads.scored -> routing -> leads.routed -> (observer). The floor is the same shape with no
logic and no database: produce -> hop0 -> relay -> hop1 -> relay -> hop2 -> relay -> hop3 ->
(observer). Each relay is its own process, like each service, consumes with the kit's consumer
settings (fetch_max_wait_ms, max_poll_records, manual commit after the work) and produces with
the kit's producer settings (acks=all, idempotent, linger_ms=0), stamping ``ce_time`` as a
service stamps its event's time; ``ce_leadcapturedat`` travels unchanged. The observer then
measures the floor exactly as it measures the pipeline.

A relay process: ``python -m bench.floor --bootstrap B --src T0 --dst T1 --group G``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bench import kafkaconf

HOPS = 4  # topics: leads.captured, leads.enriched, leads.scored, leads.routed
STAGES = ("captured", "enriched", "scored", "routed")


def floor_topics(prefix: str) -> dict[str, str]:
    """stage -> topic, named after the pipeline stage each hop stands for."""
    return {stage: f"{prefix}hop{i}.{stage}" for i, stage in enumerate(STAGES)}


async def relay(bootstrap: str, src: str, dst: str, group: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    consumer = AIOKafkaConsumer(src, **kafkaconf.consumer_kwargs(bootstrap, group))
    producer = AIOKafkaProducer(**kafkaconf.producer_kwargs(bootstrap))
    await producer.start()
    await consumer.start()
    try:
        await producer.partitions_for(dst)

        async def forward(tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]) -> None:
            pending = []
            for record in records:
                headers = [(k, v) for k, v in record.headers if k != "ce_time"]
                headers.append(("ce_time", datetime.now(UTC).isoformat().encode()))
                pending.append(await producer.send(dst, value=record.value, key=record.key, headers=headers))
            await asyncio.gather(*pending)
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


class FloorSource:
    """Produces the floor's 'form fills': one small record per lead into hop0."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.producer = AIOKafkaProducer(**kafkaconf.producer_kwargs(bootstrap))

    async def start(self) -> None:
        await self.producer.start()
        await self.producer.partitions_for(self.topic)

    async def send(self, lead_id: str) -> float:
        """Produce one record; returns the epoch time it was stamped with (its 'capture')."""
        now = datetime.now(UTC)
        stamp = now.isoformat().encode()
        body = b'{"email":"bench@example.com","company":"Floor Ltd","country":"DE"}'
        future = await self.producer.send(
            self.topic, value=body, key=lead_id.encode(),
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
    args = parser.parse_args()
    try:
        import uvloop  # the services run on uvloop (uvicorn picks it), so the floor does too

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(relay(args.bootstrap, args.src, args.dst, args.group))


if __name__ == "__main__":
    main()
