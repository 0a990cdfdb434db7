"""A fake of the five services' HTTP APIs for unit tests: canned answers by (method, path), every
request recorded."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from leadflow_cli.main import main

PORTS = {"8001": "capture", "8002": "enrichment", "8003": "scoring", "8004": "routing", "8005": "sla"}
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


@dataclass
class FakeServices:
    answers: dict[tuple[str, str, str], Answer] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, service: str, method: str, path: str, status: int = 200, body: Any = None,
           text: str | None = None) -> None:
        if text is not None:
            self.answers[(service, method, path)] = httpx.Response(status, text=text)
        else:
            self.answers[(service, method, path)] = httpx.Response(status, json=body)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        service = PORTS.get(str(request.url.port), str(request.url.host))
        answer = self.answers.get((service, request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"detail": f"no fake for {service} {request.method} {request.url.path}"})
        return answer(request) if callable(answer) else answer

    def sent(self, method: str | None = None) -> list[tuple[str, str, str, Any]]:
        """(service, method, path, JSON body or None) of every request, in order."""
        seen = []
        for r in self.requests:
            if method is None or r.method == method:
                body = json.loads(r.content) if r.content and r.headers.get("content-type") == "application/json" \
                    else None
                seen.append((PORTS.get(str(r.url.port), str(r.url.host)), r.method, r.url.path, body))
        return seen


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


def run(fake: FakeServices | None, *argv: str, env: Mapping[str, str] | None = None) -> Run:
    out, err = io.StringIO(), io.StringIO()
    transport = httpx.MockTransport(fake.handle) if fake is not None else None
    code = main(list(argv), transport=transport, env=env or {}, stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())
