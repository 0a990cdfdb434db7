"""Request bodies are bounded before they are read: size, JSON nesting, and the caller's key first.

``BoundedBodyMiddleware`` wraps ``receive``. The first time a route asks for its body it
1. checks the caller's API key when the route needs a scope (FastAPI reads a body before it runs a
   route's dependencies, so without this an anonymous caller could make an admin route read and parse
   a body it will refuse anyway),
2. refuses a declared Content-Length over the route's limit (413) without reading anything,
and then counts the bytes as they stream in (chunked bodies too: 413 as soon as the limit is passed)
and follows the nesting of a JSON body (422 beyond ``MAX_JSON_DEPTH``), so nothing downstream ever
holds an oversized body or recurses over a hostile one.

A route's limit is ``settings.max_body_bytes`` unless the route says otherwise with ``@body_limit``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow_kit.errors import FieldError

MAX_JSON_DEPTH = 32
BODY_LIMIT_ATTRIBUTE = "__leadflow_body_limit__"
REQUIRED_SCOPE_ATTRIBUTE = "required_scope"

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def body_limit(limit: int | str) -> Callable[[Endpoint], Endpoint]:
    """Declare a route's body limit: bytes, or the name of the settings field that holds it.

    Goes under the route decorator: ``@router.post(...)`` then ``@body_limit("account_import_max_bytes")``.
    """

    def declare(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, BODY_LIMIT_ATTRIBUTE, limit)
        return endpoint

    return declare


class BodyRefused(HTTPException):
    """A body refused while it streams in; answered with the shared problem body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, detail={
            "detail": message, "errors": [FieldError(field="body", code=code, message=message).model_dump()]})
        self.code = code
        self.message = message


def is_json_media_type(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


_JSON_STRUCTURE = re.compile(rb'[\\"\[\]{}]')


class JsonDepth:
    """Follows how deep a JSON text nests, chunk by chunk, without parsing it (only brackets and strings)."""

    def __init__(self, limit: int = MAX_JSON_DEPTH) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.offset = 0
        self.escaped_at = -1

    def feed(self, chunk: bytes) -> bool:
        """False as soon as the text nests deeper than the limit."""
        for match in _JSON_STRUCTURE.finditer(chunk):
            at = self.offset + match.start()
            if at == self.escaped_at:
                continue
            char = chunk[match.start()]
            if self.in_string:
                if char == 0x5C:  # a backslash escapes the next byte, wherever it lands
                    self.escaped_at = at + 1
                elif char == 0x22:
                    self.in_string = False
            elif char == 0x22:
                self.in_string = True
            elif char in (0x5B, 0x7B):
                self.depth += 1
                if self.depth > self.limit:
                    return False
            elif char in (0x5D, 0x7D):
                self.depth -= 1
        self.offset += len(chunk)
        return True


def too_large(limit: int) -> BodyRefused:
    return BodyRefused(413, "body_too_large", f"the body exceeds {limit} bytes")


def too_deep() -> BodyRefused:
    return BodyRefused(422, "too_deep", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")


class BoundedBodyMiddleware:
    def __init__(self, app: ASGIApp, default_limit: int) -> None:
        self.app = app
        self.default_limit = default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, _BoundedReceive(scope, receive, self.default_limit), send)


class _BoundedReceive:
    def __init__(self, scope: Scope, receive: Receive, default_limit: int) -> None:
        self.scope = scope
        self.receive = receive
        self.default_limit = default_limit
        self.limit: int | None = None
        self.received = 0
        self.depth: JsonDepth | None = None

    async def __call__(self) -> Message:
        if self.limit is None:
            # Routing has happened by the time a route asks for its body: scope["route"] is the route.
            route = self.scope.get("route")
            await self._check_caller(route)
            self.limit = self._limit_of(route)
            headers = Headers(scope=self.scope)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.limit:
                raise too_large(self.limit)
            if is_json_media_type(headers.get("content-type")):
                self.depth = JsonDepth()
        message = await self.receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            self.received += len(chunk)
            if self.received > self.limit:
                raise too_large(self.limit)
            if self.depth is not None and not self.depth.feed(chunk):
                raise too_deep()
        return message

    def _limit_of(self, route: Any) -> int:
        declared = getattr(getattr(route, "endpoint", None), BODY_LIMIT_ATTRIBUTE, None)
        if isinstance(declared, str):
            return int(getattr(self.scope["app"].state.platform.settings, declared))
        return declared if isinstance(declared, int) else self.default_limit

    async def _check_caller(self, route: Any) -> None:
        """Run the route's scope checks (401/403) now, before a byte of the body is read."""
        for check in scope_checks(route):
            await check(Request(self.scope))


def scope_checks(route: Any) -> list[Callable[[Request], Any]]:
    """The API-key checks a route depends on (``leadflow_kit.auth.require_scope``)."""
    dependant = getattr(route, "dependant", None)
    return [d.call for d in getattr(dependant, "dependencies", ())
            if d.call is not None and getattr(d.call, REQUIRED_SCOPE_ATTRIBUTE, None) is not None]
