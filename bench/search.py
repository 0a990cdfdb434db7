"""The lead search step: a mix of ``GET /v1/leads`` queries against sla over the pre-filled leads.

Every filter and both sorts each way, some with a capture-date range, some a second page through the
cursor; one query at a time (a person searching), so each figure is the query's own time: the request,
the statement and the answer. The prefill's leads are ``pf-<g>`` with email ``pf<g>@prefill.invalid``,
company ``Company <g % 50000>``, rep ``pf-rep-<g % 40>``, team ``pf-team-<g % 5>``, every 50th waiting in
queue ``triage`` (bench/prefill.py)."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.analysis import percentiles

WARMUP_QUERIES = 100
COMPANIES = 50000


def queries(prefilled: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """One round of the mix: (kind, query parameters)."""
    g = rng.randint(1, max(prefilled, 1))
    day = datetime.now(UTC) - timedelta(days=rng.uniform(1, 28))
    window = {"captured_from": day.isoformat(), "captured_to": (day + timedelta(days=1)).isoformat()}
    return [
        ("email", {"email": f"PF{g}@prefill.invalid"}),
        ("company", {"company": f"company {g % COMPANIES}"}),
        ("owner", {"owner": f"pf-rep-{g % 40}"}),
        ("owner by score", {"owner": f"pf-rep-{g % 40}", "sort": "-score"}),
        ("team + date range", {"team": f"pf-team-{g % 5}", **window}),
        ("queue", {"queue": "triage", "sort": "captured_at"}),
        ("stage", {"stage": "sql"}),
        ("tier by score", {"tier": "warm", "sort": "-score"}),
        ("source + campaign + form", {"source": "google", "campaign": "brand", "form": "demo"}),
        ("date range", {**window, "sort": "captured_at"}),
        ("everything by score", {"sort": "score", "limit": 200}),
        ("latest", {}),
    ]


async def run(sla_url: str, api_key: str, prefilled: int, rounds: int, seed: int = 19) -> dict[str, Any]:
    """``rounds`` rounds of the mix (each query and, when it has one, its next page); the latencies by kind
    and overall, in ms, and the answers that were not 200."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    async with httpx.AsyncClient(base_url=sla_url, headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=30) as client:
        for index in range(rounds + WARMUP_QUERIES // 12 + 1):
            measured = index > WARMUP_QUERIES // 12
            for kind, params in queries(prefilled, rng):
                page = await _timed(client, params, times[kind] if measured else [], errors, kind)
                cursor = page.get("next_cursor") if page else None
                if cursor and rng.random() < 0.3:
                    await _timed(client, {**params, "cursor": cursor}, times["next page"] if measured else [],
                                 errors, "next page")
    every = [t for values in times.values() for t in values]
    return {"prefilled_leads": prefilled, "queries": len(every), "latency_ms": percentiles(every),
            "by_kind_ms": {kind: percentiles(values) for kind, values in times.items()},
            "errors": dict(errors)}


async def _timed(client: httpx.AsyncClient, params: dict[str, Any], into: list[float], errors: dict[str, int],
                 kind: str) -> dict[str, Any] | None:
    started = time.perf_counter()
    answer = await client.get("/v1/leads", params=params)
    into.append(time.perf_counter() - started)
    if answer.status_code != 200:
        errors[f"{kind}: {answer.status_code}"] += 1
        return None
    body: dict[str, Any] = answer.json()
    return body
