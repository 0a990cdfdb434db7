"""One httpx client per LeadFlow service, each with the console's own key for that service.

A service answering 4xx/5xx raises ``ServiceError`` with its problem ``detail``; one that cannot be
reached raises ``ServiceUnavailable``. The app shows either as a message on the page (never a 500).

A service that refuses the console's key (401) may have been given a new one by another pod's
``provision-keys`` (a scope change replaces the key and revokes the old one), or provisioning kept none yet
when ``serve`` started: a client whose key is kept in the console's database asks ``replacement`` for the
key kept now and, if it differs, sends the request once more with it (a 401 is answered before anything is
done, so a repeat does nothing twice)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from leadflow_console.settings import SERVICES, Settings

Params = Mapping[str, str | int | float | bool | list[str] | None]
# (service, the key it refused) -> the key kept for it now, or None when there is no other.
KeyReplacement = Callable[[str, str], Awaitable[str | None]]

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """``service`` answered ``status`` (4xx/5xx) with ``detail``; ``errors`` are the problem's field errors."""

    def __init__(self, service: str, status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{service}: {status} {detail}")
        self.service = service
        self.status = status
        self.detail = detail
        self.errors = errors or []

    @property
    def message(self) -> str:
        """What the user reads."""
        return f"{self.service} refused the request: {self.detail}"


class ServiceUnavailable(ServiceError):
    """``service`` could not be reached (down, timing out, or answering 502-504)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(service, 503, reason)

    @property
    def message(self) -> str:
        return f"{self.service} is unavailable"


class ServiceClient:
    def __init__(self, name: str, http: httpx.AsyncClient, replacement: KeyReplacement | None = None) -> None:
        self.name = name
        self.http = http
        self.replacement = replacement

    async def request(self, method: str, path: str, *, params: Params | None = None, json: Any = None,
                      content: bytes | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """The service's answer when it is 2xx/3xx; raises ``ServiceError`` / ``ServiceUnavailable`` otherwise."""
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            response = await self.http.request(method, path, params=clean, json=json, content=content,
                                               headers=headers)
            if response.status_code == 401 and await self._rekeyed():
                response = await self.http.request(method, path, params=clean, json=json, content=content,
                                                   headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(self.name, type(exc).__name__) from exc
        if response.status_code in (502, 503, 504):
            raise ServiceUnavailable(self.name, f"answered {response.status_code}")
        if response.status_code >= 400:
            detail, errors = _problem(response)
            raise ServiceError(self.name, response.status_code, detail, errors)
        return response

    async def _rekeyed(self) -> bool:
        """Whether the key kept for this service now is another than the one just refused, or than none when
        provisioning had kept no key yet as ``serve`` started (and is used from here on)."""
        refused = self.http.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.replacement is None:
            return False
        key = await self.replacement(self.name, refused)
        if key is None:
            return False
        self.http.headers["Authorization"] = f"Bearer {key}"
        log.info("%s refused the console's key; using the one provision-keys keeps now", self.name)
        return True

    async def get(self, path: str, params: Params | None = None) -> Any:
        """GET ``path``; its JSON body."""
        return (await self.request("GET", path, params=params)).json()

    async def post(self, path: str, json: Any = None, params: Params | None = None) -> Any:
        """POST ``path`` with a JSON body; its JSON body (None for an empty answer)."""
        response = await self.request("POST", path, json=json, params=params)
        return response.json() if response.content else None

    async def put(self, path: str, json: Any = None) -> Any:
        response = await self.request("PUT", path, json=json)
        return response.json() if response.content else None

    async def patch(self, path: str, json: Any = None) -> Any:
        response = await self.request("PATCH", path, json=json)
        return response.json() if response.content else None

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)


def _problem(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}", []
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}", []
    detail = body.get("detail")
    raw_errors = body.get("errors")
    errors = [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
    return (str(detail) if detail else f"HTTP {response.status_code}"), errors


class ServiceClients:
    """``clients.routing.get("/v1/reps")``; one pooled client per service, closed by ``aclose``."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None,
                 replacement: KeyReplacement | None = None) -> None:
        """``replacement`` reads the keys ``provision-keys`` keeps (none: every key is given)."""
        self._clients: dict[str, ServiceClient] = {}
        for name in SERVICES:
            key = settings.service_api_key(name)
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            self._clients[name] = ServiceClient(name, httpx.AsyncClient(
                base_url=settings.service_url(name), headers=headers, transport=transport,
                timeout=httpx.Timeout(settings.service_timeout_seconds)), replacement)

    def __getitem__(self, name: str) -> ServiceClient:
        return self._clients[name]

    @property
    def capture(self) -> ServiceClient:
        return self._clients["capture"]

    @property
    def enrichment(self) -> ServiceClient:
        return self._clients["enrichment"]

    @property
    def scoring(self) -> ServiceClient:
        return self._clients["scoring"]

    @property
    def routing(self) -> ServiceClient:
        return self._clients["routing"]

    @property
    def sla(self) -> ServiceClient:
        return self._clients["sla"]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.http.aclose()
