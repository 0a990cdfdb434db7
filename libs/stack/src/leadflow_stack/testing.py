"""Helpers the integration tests of every service share: read and write events on the suite's
Kafka, run an app in-process with its lifespan behind an httpx client, poll until something holds,
and build a service's test settings from the suite's infra.

Everything here talks to real servers; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from leadflow_contracts import Event, EventData, decode, encode_body, encode_headers
from leadflow_kit.db import PIPELINE_PLANNING, Database
from leadflow_kit.egress import IPAddress, Resolver
from leadflow_stack.services import LOCAL_RECEIVER_NETWORKS

T = TypeVar("T")
S = TypeVar("S")

TEST_ADMIN_KEY = "test-admin-key-0123456789"
"""The bootstrap admin key the services' integration tests configure (scope ``*``)."""


def bearer(key: str = TEST_ADMIN_KEY) -> dict[str, str]:
    """Admin API headers for ``key``."""
    return {"Authorization": f"Bearer {key}"}


def service_settings(
    factory: Callable[..., S],
    *,
    database_url: str,
    bootstrap_servers: str,
    topic_prefix: str,
    admin_api_key: str = TEST_ADMIN_KEY,
    **overrides: Any,
) -> S:
    """A service's ``Settings`` on the suite's infra: its database, broker and topic prefix, the
    ``test`` environment, a known admin key, and webhooks allowed to the suite's receivers on
    loopback over http; ``overrides`` win."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap_servers,
        "topic_prefix": topic_prefix,
        "environment": "test",
        "admin_api_key": admin_api_key,
        "webhook_allow_http": True,
        "webhook_allowed_networks": LOCAL_RECEIVER_NETWORKS,
        **overrides,
    }
    return factory(**values)


# -- Kafka -----------------------------------------------------------------------------------


def _reader(topic: str, bootstrap_servers: str) -> AIOKafkaConsumer:
    # No group: nothing committed, so every reader starts at the earliest offset and sees it all.
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, group_id=None, auto_offset_reset="earliest",
                            enable_auto_commit=False, fetch_max_wait_ms=20)


async def read_events(
    bootstrap_servers: str,
    topic: str,
    until: Callable[[list[Event[EventData]]], bool],
    timeout: float = 20.0,
) -> list[Event[EventData]]:
    """Read ``topic`` (a full name, prefix included) from the start until ``until(events)`` holds;
    returns every event seen. Fails when it does not hold within ``timeout`` seconds."""
    consumer = _reader(topic, bootstrap_servers)
    await consumer.start()
    seen: list[Event[EventData]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                seen += [decode(r.value, r.headers) for r in records if r.value is not None]
            if until(seen):
                return seen
    finally:
        await consumer.stop()
    raise AssertionError(f"condition not met on {topic} within {timeout}s; saw {len(seen)} events")


@dataclass
class EventCollector:
    """Everything published on one topic since collecting started (see :func:`collecting`)."""

    events: list[Event[EventData]] = field(default_factory=list)

    def of(self, lead_id: str) -> list[Event[Any]]:
        return [e for e in self.events if e.subject == lead_id]

    async def wait(self, condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not met within {timeout}s; saw {len(self.events)} events")
            await asyncio.sleep(0.02)


C = TypeVar("C", bound=EventCollector)


@asynccontextmanager
async def _collecting(bootstrap_servers: str, topic: str, into: C) -> AsyncIterator[C]:
    consumer = _reader(topic, bootstrap_servers)
    await consumer.start()

    async def run() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                into.events += [decode(r.value, r.headers) for r in records if r.value is not None]

    task = asyncio.create_task(run())
    try:
        yield into
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


@overload
def collecting(bootstrap_servers: str, topic: str) -> AbstractAsyncContextManager[EventCollector]: ...


@overload
def collecting(bootstrap_servers: str, topic: str, into: C) -> AbstractAsyncContextManager[C]: ...


def collecting(
    bootstrap_servers: str, topic: str, into: EventCollector | None = None
) -> AbstractAsyncContextManager[EventCollector]:
    """Collect ``topic`` (full name) from its start into ``into`` (a fresh :class:`EventCollector`
    by default) in the background; the reader is running once the block is entered."""
    return _collecting(bootstrap_servers, topic, into if into is not None else EventCollector())


async def send_event(
    producer: AIOKafkaProducer, event: Event[Any], *, topic_prefix: str = "", key: str | None = None
) -> None:
    """Publish ``event`` as the services do (key = subject unless ``key`` is given, attributes in
    headers) on ``topic_prefix + event.topic``, and wait for the broker's ack."""
    await producer.send_and_wait(f"{topic_prefix}{event.topic}", encode_body(event),
                                 key=(key or event.subject).encode(), headers=encode_headers(event))


async def produce(bootstrap_servers: str, topic_prefix: str, events: Iterable[Event[Any]]) -> None:
    """Publish ``events`` in order with a producer of their own (see :func:`send_event`)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5)
    await producer.start()
    try:
        # One producer keeps each partition's records in send order; waiting once lets them batch.
        futures = [
            await producer.send(f"{topic_prefix}{e.topic}", encode_body(e), key=e.subject.encode(),
                                headers=encode_headers(e))
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# -- apps and polling ------------------------------------------------------------------------


@asynccontextmanager
async def app_client(
    app: Any,
    base_url: str = "http://test",
    *,
    client_address: tuple[str, int] = ("127.0.0.1", 123),
    wait_assigned: float | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` (a FastAPI/Starlette app) with its real lifespan and yield an httpx client that
    calls it in-process. With ``wait_assigned`` (seconds), first wait until its consumer runner
    owns partitions, so events produced afterwards are consumed."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=client_address)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            if wait_assigned is not None:
                await asyncio.wait_for(app.state.runtime.runner.assigned.wait(), wait_assigned)
            yield client


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = 30.0, interval: float = 0.05, what: str | None = None
) -> T:
    """Await ``check()`` every ``interval`` seconds until it returns something truthy, and return
    that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or getattr(check, '__name__', 'condition')} not true within {timeout}s")
        await asyncio.sleep(interval)


@asynccontextmanager
async def serving(server: Any, timeout: float = 30.0, what: str = "server") -> AsyncIterator[None]:
    """Run ``server`` (a ``uvicorn.Server``) in this event loop for the block; enter once it
    accepts connections, stop it gracefully on exit. ``timeout`` bounds the start and the stop."""
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + timeout
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start under uvicorn")
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout)


# -- hostile bodies --------------------------------------------------------------------------


class StreamedBody:
    """A request body sent in ``chunks`` pieces of ``chunk`` without a Content-Length (chunked), which
    counts how many pieces the server pulled: a server that refuses early pulls few or none."""

    def __init__(self, chunk: bytes, chunks: int) -> None:
        self.chunk = chunk
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield self.chunk


def deeply_nested_json(depth: int) -> bytes:
    """``{"a": [[[...]]]}``: a JSON object whose one field nests ``depth`` arrays deep."""
    return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is the shared problem body (RFC 9457) with ``status`` and, if given, an error ``code``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"], body
    if code is not None:
        assert code in {e["code"] for e in body["errors"]}, body
    return body


# asyncpg's own look-ups of a type new to the connection, with jit switched off around them.
_DRIVER_INTERNALS = ("typeinfo_tree", "'jit'")


@contextlib.contextmanager
def counting_statements(conn: asyncpg.Connection) -> Iterator[list[str]]:
    """The statements ``conn`` runs inside the block, in order (without the driver's own type look-ups): how
    a test counts what a handler asks of the database."""
    statements: list[str] = []

    def count(record: Any) -> None:
        if not any(internal in record.query for internal in _DRIVER_INTERNALS):
            statements.append(record.query)

    conn.add_query_logger(count)
    try:
        yield statements
    finally:
        conn.remove_query_logger(count)


@asynccontextmanager
async def pipeline_database(url: str) -> AsyncIterator[Database]:
    """The database at ``url`` as the event pipeline's consumers reach it (``Platform.pipeline_db``: each
    statement planned once, scans and hash joins ruled out), disposed at the end."""
    database = Database(url, pool_size=2, planning=PIPELINE_PLANNING)
    try:
        yield database
    finally:
        await database.dispose()


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every node of a plan from ``EXPLAIN (FORMAT JSON)`` (its ``"Plan"``), subplans included."""
    return [node, *(found for child in node.get("Plans", []) for found in plan_nodes(child))]


def rows_filtered_out(plan: dict[str, Any]) -> int:
    """Rows an ``EXPLAIN (ANALYZE, FORMAT JSON)`` plan read and threw away (filters and join filters, every
    loop): what a statement that should reach its rows by key must keep small whatever the tables hold."""
    return int(sum((node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Join Filter", 0))
                   * node["Actual Loops"] for node in plan_nodes(plan)))


def array_literals(*arrays: Sequence[Any]) -> str:
    """Arrays as SQL literals, comma-separated: the arguments of ``EXPLAIN EXECUTE``, which takes no
    parameters. Elements are written as text (datetimes in ISO form); None is NULL."""
    def element(value: Any) -> str:
        if value is None:
            return "NULL"
        text = value.isoformat() if isinstance(value, datetime.datetime) else str(value)
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return ", ".join("'{" + ",".join(element(value) for value in array).replace("'", "''") + "}'"
                     for array in arrays)


def scripted_resolver(*answers: list[str]) -> tuple[list[str], Resolver]:
    """A DNS server for the egress guard's tests (``leadflow_kit.egress.Resolver``): each lookup gets the
    next answer, the last one repeating; returns the names asked for (filled as they are) and the resolver."""
    asked: list[str] = []
    queue = list(answers)

    async def resolve(host: str, _port: int) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(a) for a in (queue.pop(0) if len(queue) > 1 else queue[0])]

    return asked, resolve


def self_signed_certificate(directory: Path, hostname: str = "leadflow test") -> tuple[Path, Path]:
    """A day's self-signed CA certificate for ``hostname`` (its subject, and its DNS name unless it has a
    space) and its key, as PEM files in ``directory``: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if " " not in hostname:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
