"""schemathesis over a live service, as every service's integration suite runs it.

Each operation gets valid and invalid data (bounded examples), then the stateful phase chains
operations through the links schemathesis infers (create, then read, change, delete what was
created). Every answer is checked with ``not_a_server_error`` and ``response_schema_conformance``:
no 5xx for any input, and every body is what the service's own OpenAPI document says.

Needs the workspace's dev dependencies (schemathesis, hypothesis, uvicorn); test code only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from leadflow_stack.procs import free_port

CHECKS = [not_a_server_error, response_schema_conformance]
SKIPPED_PATHS = frozenset({"/metrics"})

Case = schemathesis.Case[Any]
Prepare = Callable[[Case], None]


@contextmanager
def serving_in_thread(app: Any, what: str = "service") -> Iterator[str]:
    """``app`` under uvicorn on a free port, in a thread with its own event loop (the synchronous
    hypothesis engine drives it over real HTTP); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"{what}-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError(f"{what} did not start under uvicorn")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Findings:
    """Failures, one line each, at most one per operation, generation mode and check."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._seen: set[tuple[str, str, str]] = set()
        self.calls = 0

    def validate(self, case: Case, response: Any, mode: str) -> None:
        self.calls += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            key = (case.operation.label, mode, type(exc).__name__ + str(response.status_code))
            if key not in self._seen:
                self._seen.add(key)
                self.lines.append(f"{case.operation.label} [{mode}] -> {response.status_code} "
                                  f"{response.text[:300]!r} for body {case.body!r:.300} "
                                  f"query {case.query!r:.200} path {case.path_parameters!r:.200}: "
                                  f"{str(exc)[:600]}")


def fuzz_service(base_url: str, headers: dict[str, str], *, examples: int = 8, stateful_examples: int = 10,
                 steps: int = 6, prepare: Prepare | None = None, stateful: bool = True,
                 skipped_paths: frozenset[str] = frozenset()) -> list[str]:
    """Run both phases against ``base_url`` with ``headers`` (the admin key); returns the failures.

    ``prepare`` may point a case at something that exists (e.g. a form key) before it is sent. Without
    ``stateful`` only the first phase runs (an API whose operations have no links to chain);
    ``skipped_paths`` are never called (e.g. one that would end the session the headers carry).
    """
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    findings = Findings()
    bounded = settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                       suppress_health_check=list(HealthCheck))
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if operation.path in SKIPPED_PATHS | skipped_paths:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, base_url, headers, bounded, findings, prepare)
    assert findings.calls > 50, f"only {findings.calls} calls were made"
    if not stateful:
        return findings.lines
    stateless = findings.calls
    _run_stateful(schema, base_url, headers, findings, stateful_examples, steps)
    assert findings.calls > stateless, "the stateful phase made no call (no links between operations?)"
    return findings.lines


def _fuzz_operation(operation: schemathesis.APIOperation[Any, Any, Any, Any], mode: GenerationMode, base_url: str,
                    headers: dict[str, str], bounded: settings, findings: Findings,
                    prepare: Prepare | None) -> None:
    @bounded
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Case) -> None:
        if prepare is not None:
            prepare(case)
        response = case.call(base_url=base_url, headers=headers, timeout=15)
        findings.validate(case, response, mode.value)

    try:
        check()
    except Unsatisfiable:
        # An operation without parameters or body has nothing to make invalid.
        if mode is GenerationMode.POSITIVE:
            raise


def _run_stateful(schema: Any, base_url: str, headers: dict[str, str], findings: Findings,
                  examples: int, steps: int) -> None:
    machine = schema.as_state_machine()

    class Authenticated(machine):  # type: ignore[valid-type, misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": base_url, "headers": headers, "timeout": 15}

        def validate_response(self, response: Any, case: Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            findings.validate(case, response, "stateful")

    Authenticated.run(settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                                        derandomize=True, database=None, suppress_health_check=list(HealthCheck)))
