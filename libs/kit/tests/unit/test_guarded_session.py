"""The webhooks' and notifications' HTTP client (``guarded_session``) against real local sockets: kept
connections, timeouts and hang-ups, TLS, and the egress guard at the name and at the address."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from leadflow_kit.egress import (
    EgressPolicy,
    ForbiddenDestination,
    GuardedResolver,
    guarded_session,
    guarded_socket,
    parse_networks,
)
from leadflow_stack.testing import scripted_resolver, self_signed_certificate

LOOPBACK = EgressPolicy(allow_http=True, allowed_networks=parse_networks("127.0.0.0/8"))


class Receiver:
    """A plain asyncio server answering each request with 204, recording every chunk it received
    (one recv each) and how many connections it took."""

    def __init__(self, answer: Callable[[bytes], Awaitable[bytes | None]] | None = None) -> None:
        self.chunks: list[bytes] = []
        self.connections = 0
        self.answer = answer
        self.server: asyncio.Server | None = None
        self.port = 0
        self.open: list[asyncio.StreamWriter] = []

    async def start(self) -> Receiver:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def hang_up_idle(self) -> None:
        for writer in self.open:
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open.append(writer)
        buffer = b""
        try:
            while chunk := await reader.read(65536):
                self.chunks.append(chunk)
                buffer += chunk
                head, sep, rest = buffer.partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if len(rest) < length:
                    continue
                buffer = rest[length:]
                reply = await self.answer(head) if self.answer else b"HTTP/1.1 204 No Content\r\n\r\n"
                if reply is None:
                    break  # hang up without answering
                writer.write(reply)
                await writer.drain()
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = await Receiver().start()
    yield found
    found.close()


async def test_requests_go_over_one_kept_connection_with_the_headers_given(receiver: Receiver) -> None:
    async with guarded_session(LOOPBACK) as session:
        for n in range(3):
            async with session.post(receiver.url, data=b'{"n": %d}' % n,
                                    headers={"content-type": "application/json", "user-agent": "LeadFlow"}) as answer:
                assert answer.status == 204
    # One connection, and each request's head and body in one send (its receiver wakes once).
    assert receiver.connections == 1 and len(receiver.chunks) == 3
    sent = b"".join(receiver.chunks)
    assert sent.count(b"POST /hook HTTP/1.1") == 3 and sent.endswith(b'{"n": 2}')
    head = sent.split(b"\r\n\r\n", 1)[0].lower()
    # What it sends is what the caller gave: no compression asked for, its own user agent.
    assert b"user-agent: leadflow" in head and b"accept-encoding" not in head


async def test_a_large_body_is_sent_whole(receiver: Receiver) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB
    async with guarded_session(LOOPBACK) as session, session.post(receiver.url, data=body) as answer:
        assert answer.status == 204
    assert b"".join(receiver.chunks).endswith(body)


async def test_a_connection_the_receiver_closed_while_idle_is_not_reused(receiver: Receiver) -> None:
    async with guarded_session(LOOPBACK) as session:
        async with session.post(receiver.url, data=b"1") as answer:
            assert answer.status == 204
        # The receiver drops the kept connection; the pool must notice before its next request.
        receiver.hang_up_idle()
        await asyncio.sleep(0.1)
        async with session.post(receiver.url, data=b"2") as answer:
            assert answer.status == 204
    assert receiver.connections == 2


async def test_silence_a_closed_port_and_a_hang_up_are_errors_the_callers_record() -> None:
    async def never(_head: bytes) -> bytes | None:
        await asyncio.sleep(10)
        return None

    silent = await Receiver(never).start()
    try:
        async with guarded_session(LOOPBACK) as session:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2), session.post(silent.url, data=b"{}"):
                    pass
    finally:
        silent.close()
    async with guarded_session(LOOPBACK) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            async with session.post(silent.url, data=b"{}"):  # nobody listens there any more
                pass

    async def hang_up(_head: bytes) -> bytes | None:
        return None

    rude = await Receiver(hang_up).start()
    try:
        async with guarded_session(LOOPBACK) as session:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with session.post(rude.url, data=b"{}"):
                    pass
    finally:
        rude.close()


async def test_at_send_time_the_name_is_resolved_again_and_only_the_checked_address_is_connected(
        receiver: Receiver) -> None:
    # DNS rebinding: allowed when the URL was saved, inside when the webhook is sent.
    asked, rebinding = scripted_resolver(["127.0.0.1"], ["10.0.0.5"])
    url = f"http://crm.example.com:{receiver.port}/hook"
    async with guarded_session(LOOPBACK, rebinding) as session:
        async with session.post(url, data=b"{}") as answer:
            assert answer.status == 204  # connected to the address the resolver answered and the guard passed
        # A new connection (the kept one dropped, the name's few cached seconds over) resolves again.
        receiver.hang_up_idle()
        await asyncio.sleep(0.1)
        session.connector.clear_dns_cache()  # type: ignore[union-attr]
        with pytest.raises(aiohttp.ClientConnectorError, match=r"refused to connect to crm\.example\.com: "
                                                               r"10\.0\.0\.5 is a private address"):
            async with session.post(url, data=b"{}"):
                pass
    assert asked == ["crm.example.com", "crm.example.com"] and receiver.connections == 1


async def test_a_name_with_any_forbidden_address_is_refused_whole() -> None:
    _, mixed = scripted_resolver(["93.184.216.34", "10.0.0.5"])
    with pytest.raises(ForbiddenDestination, match=r"10\.0\.0\.5"):
        await GuardedResolver(EgressPolicy(), mixed).resolve("crm.example.com", 443)


async def test_an_address_in_the_url_is_checked_as_it_is_connected(receiver: Receiver) -> None:
    # A literal IP never reaches the resolver; the socket factory refuses it before connecting.
    async with guarded_session(EgressPolicy(allow_http=True)) as session:
        with pytest.raises(aiohttp.ClientConnectorError, match=r"127\.0\.0\.1 is a loopback address"):
            async with session.post(receiver.url, data=b"{}"):
                pass
        with pytest.raises(aiohttp.ClientConnectorError, match="loopback"):
            async with session.post("http://localhost:9/hook", data=b"{}"):
                pass
    assert receiver.connections == 0
    with pytest.raises(ForbiddenDestination, match=r"::1 is a loopback address"):
        guarded_socket(EgressPolicy())((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 443, 0, 0)))


async def test_https_through_the_guard_checks_the_receiver_s_certificate_and_name(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path, "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    receiver = Receiver()
    receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=server_context)
    receiver.port = receiver.server.sockets[0].getsockname()[1]
    _, localhost = scripted_resolver(["127.0.0.1"])
    url = f"https://localhost:{receiver.port}/hook"
    try:
        trusting = ssl.create_default_context(cafile=cert)
        async with guarded_session(LOOPBACK, localhost, ssl_context=trusting) as session:
            for _ in range(2):
                async with session.post(url, data=b"{}") as answer:
                    assert answer.status == 204
        assert receiver.connections == 1
        assert b"".join(receiver.chunks).count(b"POST /hook HTTP/1.1") == 2
        # The same receiver under the default trust store: its certificate is nobody's.
        async with guarded_session(LOOPBACK, localhost) as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError, match="CERTIFICATE_VERIFY_FAILED"):
                async with session.post(url, data=b"{}"):
                    pass
        # A certificate for another name is refused even from an address the guard allows.
        _, elsewhere = scripted_resolver(["127.0.0.1"])
        async with guarded_session(LOOPBACK, elsewhere, ssl_context=trusting) as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.post(f"https://crm.example.com:{receiver.port}/hook", data=b"{}"):
                    pass
    finally:
        receiver.close()
