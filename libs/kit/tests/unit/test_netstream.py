"""httpcore's asyncio network layer (the webhooks' HTTP client) against real local sockets."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpcore
import httpx
import pytest

from leadflow_kit.egress import EgressPolicy, GuardedBackend, IPAddress, guarded_client, parse_networks
from leadflow_kit.netstream import AsyncioBackend
from leadflow_stack.testing import self_signed_certificate

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


async def test_a_request_s_head_and_body_arrive_in_one_send_over_one_kept_connection(receiver: Receiver) -> None:
    async with guarded_client(LOOPBACK) as client:
        for n in range(3):
            response = await client.post(receiver.url, content=b'{"n": %d}' % n,
                                         headers={"content-type": "application/json"})
            assert response.status_code == 204
    # httpcore writes the head and the body separately; they reach the receiver as one chunk each time.
    assert len(receiver.chunks) == 3
    assert all(chunk.startswith(b"POST /hook HTTP/1.1") and chunk.endswith(b"}") for chunk in receiver.chunks)
    assert receiver.connections == 1


async def test_writes_are_held_until_the_stream_reads(receiver: Receiver) -> None:
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", receiver.port, timeout=5)
    try:
        await stream.write(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n", timeout=5)
        await stream.write(b"{}", timeout=5)
        await asyncio.sleep(0.05)
        assert receiver.chunks == []  # nothing sent yet
        assert (await stream.read(65536, timeout=5)).startswith(b"HTTP/1.1 204")
        assert receiver.chunks == [b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"]
    finally:
        await stream.aclose()


async def test_a_large_body_is_sent_whole(receiver: Receiver) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB: written out as it is held, not all at the end
    async with guarded_client(LOOPBACK) as client:
        response = await client.post(receiver.url, content=body)
    assert response.status_code == 204
    assert b"".join(receiver.chunks).endswith(body)


async def test_a_connection_the_receiver_closed_while_idle_is_not_reused(receiver: Receiver) -> None:
    async with guarded_client(LOOPBACK) as client:
        assert (await client.post(receiver.url, content=b"1")).status_code == 204
        # The receiver drops the kept connection; the pool must notice before its next request.
        receiver.hang_up_idle()
        await asyncio.sleep(0.1)
        assert (await client.post(receiver.url, content=b"2")).status_code == 204
    assert receiver.connections == 2


async def test_timeouts_and_refusals_come_as_httpx_s_errors() -> None:
    async def never(_head: bytes) -> bytes | None:
        await asyncio.sleep(10)
        return None

    silent = await Receiver(never).start()
    try:
        async with guarded_client(LOOPBACK) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(silent.url, content=b"{}", timeout=httpx.Timeout(5, read=0.2))
    finally:
        silent.close()
    async with guarded_client(LOOPBACK) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(silent.url, content=b"{}")  # nobody listens there any more

    async def hang_up(_head: bytes) -> bytes | None:
        return None

    rude = await Receiver(hang_up).start()
    try:
        async with guarded_client(LOOPBACK) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post(rude.url, content=b"{}")
    finally:
        rude.close()


async def test_the_guard_still_connects_only_to_the_address_it_checked() -> None:
    backend = GuardedBackend(EgressPolicy(allow_http=True), inner=AsyncioBackend())
    with pytest.raises(httpcore.ConnectError, match="loopback"):
        await backend.connect_tcp("localhost", 9)


async def test_https_through_the_guard_checks_the_receiver_s_certificate_and_name(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path, "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    receiver = Receiver()
    receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=server_context)
    receiver.port = receiver.server.sockets[0].getsockname()[1]

    async def localhost(_host: str, _port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    backend = GuardedBackend(LOOPBACK, localhost, AsyncioBackend())
    url = f"https://localhost:{receiver.port}/hook"
    try:
        trusting = ssl.create_default_context(cafile=cert)
        async with httpcore.AsyncConnectionPool(ssl_context=trusting, network_backend=backend) as pool:
            for _ in range(2):
                response = await pool.request("POST", url, content=b"{}", headers={"Host": "localhost"})
                assert response.status == 204
        assert receiver.connections == 1
        assert b"".join(receiver.chunks).count(b"POST /hook HTTP/1.1") == 2
        async with httpcore.AsyncConnectionPool(ssl_context=ssl.create_default_context(),
                                                network_backend=backend) as pool:
            with pytest.raises(httpcore.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await pool.request("POST", url, content=b"{}")
    finally:
        receiver.close()
