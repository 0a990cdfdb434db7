"""SLA's admin bodies are bounded as they stream, nested JSON is bounded, and a body without a key
is refused unread."""

from __future__ import annotations

from typing import Any

import pytest

from leadflow_stack.testing import StreamedBody, assert_problem, deeply_nested_json

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


async def test_sla_bodies_are_bounded_before_they_are_read(apps: Any) -> None:
    _, client = await apps.start(wait_assigned=False)
    anonymous = StreamedBody(b" " * 65536, 10_000)
    response = await client.post("/v1/admin/sla-policies", content=anonymous,
                                 headers={**JSON, "Authorization": ""})
    assert_problem(response, 401)
    assert anonymous.pulled == 0

    for method, path in (("POST", "/v1/admin/sla-policies"), ("PUT", "/v1/admin/sla-calendars/rep-1")):
        declared = await client.request(method, path, content=b"{" + b" " * 65536 + b"}", headers=JSON)
        assert_problem(declared, 413, "body_too_large")
        body = StreamedBody(b" " * 1024, 500)
        streamed = await client.request(method, path, content=body, headers=JSON)
        assert_problem(streamed, 413, "body_too_large")
        assert body.pulled <= 66
        deep = await client.request(method, path, content=deeply_nested_json(2000), headers=JSON)
        assert_problem(deep, 422, "too_deep")
