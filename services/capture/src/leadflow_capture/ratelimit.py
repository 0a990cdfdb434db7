"""In-process token buckets for per-IP and per-form submission limits, and per-lead activity limits.

Why in process rather than in PostgreSQL: the point of a rate limit is to turn a flood away
before it costs anything, and a database-backed bucket would make the database do a write for
every abusive request (and put one hot row under every fill of a busy form). The price is that
limits hold per replica: with N replicas a client gets up to N times the configured rate, which
is fine for abuse protection; size the limits with that in mind.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Buckets by key, ``rate_per_minute`` refill up to ``burst``; the least recently used are
    forgotten beyond ``max_keys`` so memory stays bounded under a spray of addresses."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """Take one token; 0.0 when allowed, else the seconds until a token is available."""
        if not self.enabled:
            return 0.0
        now = self._monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


    def take_each(self, keys: Iterable[str]) -> int:
        """One token from each key's bucket in turn (a key may repeat); stops at the first refusal and
        returns its whole seconds to send as Retry-After, else 0."""
        for key in keys:
            wait = self.take(key)
            if wait > 0:
                return math.ceil(wait)
        return 0


class SubmissionLimiter:
    def __init__(
        self,
        *,
        ip_per_minute: float,
        ip_burst: int,
        form_per_minute: float,
        form_burst: int,
        exempt_ips: frozenset[str] = frozenset(),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.by_ip = TokenBuckets(ip_per_minute, ip_burst, monotonic=monotonic)
        self.by_form = TokenBuckets(form_per_minute, form_burst, max_keys=10_000, monotonic=monotonic)
        self.exempt_ips = exempt_ips

    def check(self, ip: str | None, form_key: str | None) -> int:
        """0 when the request may go ahead, else whole seconds to send as Retry-After."""
        wait = 0.0
        if ip is not None and ip not in self.exempt_ips:
            wait = self.by_ip.take(ip)
        if wait == 0.0 and form_key is not None:
            wait = self.by_form.take(form_key)
        return math.ceil(wait) if wait > 0 else 0


@dataclass
class Limiters:
    """Capture's limits, each per replica."""

    # Form fills, per address and per form.
    submissions: SubmissionLimiter
    # Activity posts, per address.
    activities: SubmissionLimiter
    # Activities per lead id, email or visitor id they name.
    activity_subjects: TokenBuckets
    # What page loads cost: embed.js fetches and CORS preflights, per address.
    page_loads: SubmissionLimiter
