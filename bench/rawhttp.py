"""A minimal HTTP/1.1 client and server on asyncio streams, for the load generator and receiver.

httpx costs about a millisecond of CPU per request; at 400 requests/s that is half a core the
services would not get on a 2-core machine, and the measurement would partly measure httpx.
This speaks just enough HTTP/1.1 (keep-alive, Content-Length and chunked bodies) for
loopback traffic with servers we know.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    # When the request was handed to the kernel (epoch s): taken right after the write, not before the
    # request was built, so a generator preempted in between (its thread runs at nice 10) is not timed as
    # the server's delay.
    sent: float


class HttpError(Exception):
    pass


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw[:-4].decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0"))
    return await reader.readexactly(length) if length else b""


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class HttpClient:
    """Keep-alive connections to one host; a request takes an idle one or opens another."""

    def __init__(self, host: str, port: int, *, max_connections: int = 256, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.max_idle = 2.0

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        async with self._slots:
            conn = self._take_idle()
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                response = await asyncio.wait_for(self._exchange(conn, method, path, body, headers or {}), self.timeout)
            except (asyncio.IncompleteReadError, ConnectionError):
                conn.close()
                if not reused:
                    raise
                # The server closed a kept-alive connection just as we reused it; it never saw this
                # request, so sending it again on a new connection is safe.
                conn = await self._connect()
                try:
                    response = await asyncio.wait_for(
                        self._exchange(conn, method, path, body, headers or {}), self.timeout
                    )
                except BaseException:
                    conn.close()
                    raise
            except BaseException:
                conn.close()
                raise
            if response.headers.get("connection", "").lower() == "close":
                conn.close()
            else:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            return response

    def _take_idle(self) -> _Conn | None:
        # uvicorn closes a keep-alive connection after 5 s idle: never reuse one near that age.
        while self._idle:
            conn = self._idle.pop()
            if time.monotonic() - conn.idle_since < self.max_idle:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Conn:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Conn(reader, writer)

    async def _exchange(
        self, conn: _Conn, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> Response:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        conn.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        sent = time.time()
        await conn.writer.drain()
        status_line, response_headers = await _read_head(conn.reader)
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError(f"bad status line {status_line!r}")
        payload = await _read_body(conn.reader, response_headers)
        return Response(int(parts[1]), response_headers, payload, sent)

    async def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Request], Awaitable[int]]

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


async def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """An HTTP/1.1 server whose handler returns only a status code (empty bodies)."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request_line, headers = await _read_head(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                body = await _read_body(reader, headers)
                method, path, _ = [*request_line.split(" ", 2), "", ""][:3]
                try:
                    status = await handler(Request(method, path, headers, body))
                except Exception:
                    status = 500
                reason = _REASONS.get(status, "Status")
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n".encode("latin-1"))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return await asyncio.start_server(on_connection, host, port)
