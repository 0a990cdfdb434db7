"""The HTTP side of the CLI: where each service is, the API key, and errors a person can read."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

SERVICES: dict[str, int] = {"capture": 8001, "enrichment": 8002, "scoring": 8003, "routing": 8004, "sla": 8005}
"""Every service and the port ``make up`` serves it on."""

DEV_API_KEY = "dev-admin-key"
"""The admin key ``make up`` configures; used only when neither --api-key nor LEADFLOW_API_KEY is set."""


def default_url(service: str, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(f"LEADFLOW_{service.upper()}_URL") or f"http://127.0.0.1:{SERVICES[service]}"


def default_api_key(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("LEADFLOW_API_KEY") or DEV_API_KEY


@dataclass(frozen=True)
class FieldProblem:
    field: str
    code: str
    message: str


@dataclass
class ApiError(Exception):
    """The service answered with a 4xx/5xx; ``reason`` and ``problems`` come from its error body."""

    service: str
    method: str
    url: str
    status: int
    reason: str
    problems: list[FieldProblem] = field(default_factory=list)

    def __str__(self) -> str:
        phrase = httpx.codes.get_reason_phrase(self.status)
        lines = [f"{self.service} answered {self.status} {phrase} to {self.method} {self.url}: {self.reason}"]
        lines += [f"  {p.field}: {p.message} ({p.code})" for p in self.problems]
        return "\n".join(lines)


@dataclass
class ServiceUnreachable(Exception):
    """No answer at all: the service is down, the URL is wrong, or it timed out."""

    service: str
    url: str
    cause: str

    def __str__(self) -> str:
        flag = f"--{self.service}-url / LEADFLOW_{self.service.upper()}_URL"
        return f"cannot reach {self.service} at {self.url} ({self.cause}); is it running? ({flag} to change)"


def api_error(service: str, response: httpx.Response) -> ApiError:
    """Read the services' error body: ``{"detail": str, "errors": [{"field", "code", "message"}]}``
    (FastAPI's plain ``{"detail": ...}`` and non-JSON bodies too)."""
    reason = response.text.strip()[:500] or httpx.codes.get_reason_phrase(response.status_code)
    problems: list[FieldProblem] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            reason = detail
        elif detail is not None:
            reason = str(detail)
        for error in body.get("errors") or []:
            if isinstance(error, dict):
                problems.append(FieldProblem(str(error.get("field", "")), str(error.get("code", "")),
                                             str(error.get("message", ""))))
    return ApiError(service, response.request.method, str(response.request.url), response.status_code, reason,
                    problems)


class Api:
    """One synchronous client for all five services (one connection pool)."""

    def __init__(self, urls: Mapping[str, str], api_key: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._http = httpx.Client(timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {api_key}", "User-Agent": "leadflow-cli"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def url(self, service: str) -> str:
        return self.urls[service]

    def call(self, service: str, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
             content: str | bytes | None = None, content_type: str | None = None, accept: str | None = None
             ) -> httpx.Response:
        """Send one request; a 2xx answer is returned, anything else raised as ApiError or
        ServiceUnreachable."""
        base = self.urls[service]
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, f"{base}{path}", json=json, params=query, content=content,
                                          headers=headers)
        except httpx.ConnectError as exc:
            raise ServiceUnreachable(service, base, _short(exc) or "connection refused") from None
        except httpx.TimeoutException:
            raise ServiceUnreachable(service, base, "no answer within the timeout") from None
        except httpx.TransportError as exc:
            raise ServiceUnreachable(service, base, _short(exc) or type(exc).__name__) from None
        if response.is_error:
            raise api_error(service, response)
        return response

    def get(self, service: str, path: str, **params: Any) -> Any:
        return _body(self.call(service, "GET", path, params=params))

    def post(self, service: str, path: str, body: Any = None) -> Any:
        return _body(self.call(service, "POST", path, json=body))

    def patch(self, service: str, path: str, body: Any) -> Any:
        return _body(self.call(service, "PATCH", path, json=body))

    def put(self, service: str, path: str, body: Any) -> Any:
        return _body(self.call(service, "PUT", path, json=body))

    def delete(self, service: str, path: str) -> Any:
        return _body(self.call(service, "DELETE", path))


def _body(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    if "json" in response.headers.get("content-type", ""):
        return response.json()
    return response.text


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else ""
