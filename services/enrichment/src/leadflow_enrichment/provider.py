"""The optional external firmographics provider: bounded in time, retried, cached, behind a circuit breaker.

The provider answers ``GET <url>?domain=<domain>`` with JSON (``name``, ``industry``, ``employee_count``,
``annual_revenue``, ``country``) or 404 when it does not know the domain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from leadflow_enrichment import normalize
from leadflow_enrichment.domain import Firmographics

log = logging.getLogger(__name__)

Monotonic = Callable[[], float]


class CircuitBreaker:
    """Closed until ``failures`` failures in a row; then open (no calls) for ``reset_seconds``;
    then half-open: one trial call decides between closed and open again."""

    def __init__(self, failures: int, reset_seconds: float, monotonic: Monotonic = time.monotonic) -> None:
        self.failures_to_open = failures
        self.reset_seconds = reset_seconds
        self.monotonic = monotonic
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.monotonic() - self.opened_at >= self.reset_seconds:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def abandoned(self) -> None:
        """A call that ended without a verdict (cancelled): the next one may be the trial."""
        self._trial_running = False

    def succeeded(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_running = False

    def failed(self) -> None:
        self.failures += 1
        if self._trial_running or self.failures >= self.failures_to_open:
            self.opened_at = self.monotonic()
        self._trial_running = False


class TtlCache:
    """A small LRU with expiry; unknown domains are cached too, so a miss is not asked again and again."""

    def __init__(self, ttl_seconds: float, max_size: int, monotonic: Monotonic = time.monotonic) -> None:
        self.ttl = ttl_seconds
        self.max_size = max_size
        self.monotonic = monotonic
        self._items: OrderedDict[str, tuple[float, Firmographics | None]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, Firmographics | None]:
        item = self._items.get(key)
        if item is None:
            return False, None
        if self.monotonic() >= item[0]:
            del self._items[key]
            return False, None
        self._items.move_to_end(key)
        return True, item[1]

    def put(self, key: str, value: Firmographics | None) -> None:
        if self.max_size == 0 or self.ttl == 0:
            return
        self._items[key] = (self.monotonic() + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class Lookup:
    facts: Firmographics | None
    # Set when the provider could not answer: provider_timeout | provider_error | provider_circuit_open.
    failure: str | None = None
    cached: bool = False
    # How long the lookup took, waiting for a free slot included.
    seconds: float = 0.0


class ProviderError(Exception):
    pass


class HttpFirmographicsProvider:
    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        timeout_seconds: float,
        retries: int,
        retry_backoff_seconds: float,
        breaker: CircuitBreaker,
        cache: TtlCache,
        concurrency: int = 8,
        auth_header: str | None = None,
        auth_value: str | None = None,
    ) -> None:
        self.url = url
        self.client = client
        self.timeout = timeout_seconds
        self.retries = retries
        self.backoff = retry_backoff_seconds
        self.breaker = breaker
        self.cache = cache
        # A batch's lookups run side by side, this many at a time: the provider's rate limits are not ours
        # to test, and each lookup's deadline starts only once it has a slot.
        self._slots = asyncio.Semaphore(concurrency)
        self.headers = {auth_header: auth_value} if auth_header and auth_value else {}

    async def lookup(self, domain: str) -> Lookup:
        started = time.perf_counter()
        async with self._slots:
            looked_up = await self._lookup(domain)
        return dataclasses.replace(looked_up, seconds=time.perf_counter() - started)

    async def _lookup(self, domain: str) -> Lookup:
        hit, cached = self.cache.get(domain)
        if hit:
            return Lookup(cached, cached=True)
        if not self.breaker.allow():
            return Lookup(None, "provider_circuit_open")
        try:
            # One deadline for the whole lookup, retries included: a hung provider costs the timeout, no more.
            async with asyncio.timeout(self.timeout):
                facts = await self._fetch_with_retries(domain)
        except (TimeoutError, httpx.TimeoutException):
            self.breaker.failed()
            log.warning("firmographics provider timed out after %.3fs", self.timeout)
            return Lookup(None, "provider_timeout")
        except (ProviderError, httpx.HTTPError) as exc:
            self.breaker.failed()
            log.warning("firmographics provider failed: %s", exc)
            return Lookup(None, "provider_error")
        except asyncio.CancelledError:
            self.breaker.abandoned()
            raise
        self.breaker.succeeded()
        self.cache.put(domain, facts)
        return Lookup(facts)

    async def _fetch_with_retries(self, domain: str) -> Firmographics | None:
        attempt = 0
        while True:
            try:
                return await self._fetch(domain)
            except (ProviderError, httpx.TransportError):
                if attempt >= self.retries:
                    raise
            attempt += 1
            await asyncio.sleep(self.backoff * 2 ** (attempt - 1))

    async def _fetch(self, domain: str) -> Firmographics | None:
        response = await self.client.get(self.url, params={"domain": domain}, headers=self.headers,
                                           timeout=self.timeout)
        if response.status_code == 404:
            return None
        if response.status_code == 429 or response.status_code >= 500:
            raise ProviderError(f"provider answered {response.status_code}")
        if response.status_code != 200:
            # A 4xx other than 404 is a configuration problem (auth, URL): retrying will not help.
            raise httpx.HTTPStatusError(f"provider answered {response.status_code}", request=response.request,
                                        response=response)
        try:
            return parse_firmographics(response.json())
        except ValueError as exc:
            raise ProviderError(f"unreadable provider answer: {exc}") from exc


def parse_firmographics(body: Any) -> Firmographics:
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")

    def text(name: str) -> str | None:
        value = body.get(name)
        return normalize.clean(str(value)) if value is not None else None

    employees = normalize.parse_number(text("employee_count"))
    return Firmographics(
        name=text("name"),
        industry=text("industry"),
        employee_count=int(employees) if employees is not None else None,
        annual_revenue=normalize.parse_number(text("annual_revenue")),
        country=normalize.normalize_country(text("country")),
    )
