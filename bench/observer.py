"""The observer process: reads the pipeline's topics and receives its webhooks, timestamping both.

It runs apart from the load generator so that neither one's event-loop delays end up in the
other's timestamps. Every observation is one JSON line in ``--out``:

* ``{"k": "ev", "stage": ..., "lead": ..., "time": ..., "cap": ..., "arr": ..., "sz": ...}`` for a
  Kafka record (``time`` = its ``ce_time``, ``cap`` = its ``ce_leadcapturedat``, ``arr`` = when
  this process got it; all epoch seconds; ``sz`` = its value's bytes);
* ``{"k": "wh", "lead": ..., "arr": ..., "ver": ..., "ok": ...}`` for a webhook delivery (``arr`` =
  its request read, ``ver`` = its Standard Webhooks signature checked, ``ok`` = verified, or no
  secret was given).

It prints ``ready <webhook port>`` on stdout once its consumer sits at the end of every
partition, and stops on SIGTERM.

    python -m bench.observer --bootstrap 127.0.0.1:19092 --out obs.jsonl \
        --topic routed=leads.routed --webhook-port 0 [--webhook-secret whsec_...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from datetime import datetime
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer

from bench import kafkaconf, rawhttp


def _epoch(value: bytes | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.decode()).timestamp()
    except ValueError:
        return None


def find_lead_id(payload: Any) -> str | None:
    """The lead id anywhere in a webhook payload (its shape belongs to routing, not to us)."""
    if isinstance(payload, dict):
        for key in ("lead_id", "leadId"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
        lead = payload.get("lead")
        if isinstance(lead, dict) and isinstance(lead.get("id"), str):
            return str(lead["id"])
        for value in payload.values():
            found = find_lead_id(value)
            if found:
                return found
    elif isinstance(payload, list):
        for value in payload:
            found = find_lead_id(value)
            if found:
                return found
    return None


class Observer:
    def __init__(self, out: TextIO, webhook_secret: str | None) -> None:
        self.out = out
        self.verifier: Any = None
        if webhook_secret:
            from standardwebhooks.webhooks import Webhook

            self.verifier = Webhook(webhook_secret)

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")

    async def on_webhook(self, request: rawhttp.Request) -> int:
        arrived = time.time()
        ok = True
        if self.verifier is not None:
            try:
                payload = self.verifier.verify(request.body, request.headers)
            except Exception:
                ok = False
                payload = json.loads(request.body or b"null")
        else:
            payload = json.loads(request.body or b"null")
        self.write({"k": "wh", "lead": find_lead_id(payload), "arr": arrived, "ver": time.time(), "ok": ok,
                    "id": request.headers.get("webhook-id")})
        return 204 if ok else 401

    async def consume(self, consumer: AIOKafkaConsumer, stages: dict[str, str], stop: asyncio.Event) -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100)
            arrived = time.time()
            for tp, records in batches.items():
                stage = stages[tp.topic]
                for record in records:
                    headers = dict(record.headers)
                    self.write({
                        "k": "ev",
                        "stage": stage,
                        "lead": record.key.decode() if record.key else None,
                        "time": _epoch(headers.get("ce_time")),
                        "cap": _epoch(headers.get("ce_leadcapturedat")),
                        "arr": arrived,
                        "sz": len(record.value or b""),
                    })
            # The benchmark follows this file while a step drains.
            self.out.flush()


async def _at_end(consumer: AIOKafkaConsumer, partitions: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(consumer.assignment()) < partitions:
        if time.monotonic() > deadline:
            raise TimeoutError(f"observer got {len(consumer.assignment())} of {partitions} partitions")
        await consumer.getmany(timeout_ms=100)
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)


async def run(args: argparse.Namespace) -> None:
    stages: dict[str, str] = {}  # topic -> stage
    for item in args.topic:
        stage, topic = item.split("=", 1)
        stages[topic] = stage
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    with open(args.out, "a", buffering=1 << 16) as out:  # noqa: ASYNC230 - opened once at start
        observer = Observer(out, args.webhook_secret)
        server = await rawhttp.serve(observer.on_webhook, port=args.webhook_port) if args.webhook_port >= 0 else None
        port = server.sockets[0].getsockname()[1] if server else -1
        consumer = AIOKafkaConsumer(
            *stages, **kafkaconf.consumer_kwargs(args.bootstrap, f"bench-observer-{uuid.uuid4().hex[:8]}",
                                                 offset_reset="latest"),
        )
        await consumer.start()
        try:
            partitions = sum(len(consumer.partitions_for_topic(t) or ()) for t in stages)
            await _at_end(consumer, partitions)
            sys.stdout.write(f"ready {port}\n")
            sys.stdout.flush()
            await observer.consume(consumer, stages, stop)
        finally:
            await consumer.stop()
            if server is not None:
                server.close()
            out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.observer")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--topic", action="append", default=[], help="stage=topic (repeatable)")
    parser.add_argument("--webhook-port", type=int, default=-1, help="0 = a free port; -1 = no receiver")
    parser.add_argument("--webhook-secret")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
