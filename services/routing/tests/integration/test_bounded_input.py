"""Routing's bodies are bounded as they stream, nested JSON is bounded, and the CRM callback and the
admin routes refuse a body unread without a key."""

from __future__ import annotations

import pytest
from routing_harness import ADMIN, Env, running

from leadflow_stack.testing import StreamedBody, assert_problem, deeply_nested_json

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("path", ["/v1/admin/reps", "/v1/leads/some-lead/events", "/v1/admin/routing-rules"])
async def test_routes_answer_401_before_reading_a_body(env: Env, path: str):
    async with running(env.settings(), wait_assigned=False) as routing:
        body = StreamedBody(b" " * 65536, 10_000)
        response = await routing.client.post(path, content=body, headers=JSON)
        assert_problem(response, 401)
        assert body.pulled == 0


async def test_bodies_over_the_limit_are_413_and_deep_json_is_422(env: Env):
    async with running(env.settings(), wait_assigned=False) as routing:
        for path in ("/v1/admin/reps", "/v1/admin/routing-rules/dry-run", "/v1/admin/webhooks/subscriptions"):
            declared = await routing.client.post(path, content=b"{" + b" " * 65536 + b"}", headers={**JSON, **ADMIN})
            assert_problem(declared, 413, "body_too_large")
            body = StreamedBody(b" " * 1024, 500)
            streamed = await routing.client.post(path, content=body, headers={**JSON, **ADMIN})
            assert_problem(streamed, 413, "body_too_large")
            assert body.pulled <= 66
            deep = await routing.client.post(path, content=deeply_nested_json(1000), headers={**JSON, **ADMIN})
            assert_problem(deep, 422, "too_deep")
