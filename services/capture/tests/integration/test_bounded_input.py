"""Bodies are bounded before they are read: size (declared or streamed), JSON nesting, and an
admin route's API key, each refused with the shared problem body."""

from __future__ import annotations

import pytest

from leadflow_stack.testing import StreamedBody, assert_problem, bearer, deeply_nested_json

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json", "Accept": "application/json"}
ADMIN_JSON = {**JSON, **bearer()}


async def test_an_admin_route_answers_401_without_reading_the_body(capture):
    # 640 MiB if it were read; the answer comes before the first chunk is pulled.
    body = StreamedBody(b"x" * 65536, 10_240)
    response = await capture.client.post("/v1/admin/forms", content=body, headers=JSON)
    assert_problem(response, 401)
    assert body.pulled == 0
    declared = await capture.client.post("/v1/admin/forms", content=b"{" + b" " * 10_000_000 + b"}", headers=JSON)
    assert_problem(declared, 401)


@pytest.mark.parametrize(("path", "headers", "limit"), [
    ("/v1/admin/forms", ADMIN_JSON, 64 * 1024),
    ("/v1/activities", JSON, 256 * 1024),
    ("/v1/admin/api-keys", ADMIN_JSON, 64 * 1024),
])
async def test_bodies_over_a_route_limit_are_413_whether_declared_or_streamed(capture, path, headers, limit):
    declared = await capture.client.post(path, content=b"{" + b" " * limit + b"}", headers=headers)
    assert_problem(declared, 413, "body_too_large")

    body = StreamedBody(b" " * 1024, limit // 1024 * 4)
    streamed = await capture.client.post(path, content=body, headers=headers)
    assert_problem(streamed, 413, "body_too_large")
    # Refused as the limit was passed, not after the whole body arrived.
    assert body.pulled <= limit // 1024 + 2


@pytest.mark.parametrize(("path", "headers"), [
    ("/v1/activities", JSON),
    ("/v1/admin/forms", ADMIN_JSON),
    ("/v1/forms/demo/submissions", JSON),
])
async def test_deeply_nested_json_is_422_not_a_server_error(capture, path, headers):
    for depth in (33, 5000, 30_000):
        response = await capture.client.post(path, content=deeply_nested_json(depth), headers=headers)
        assert_problem(response, 422, "too_deep")


async def test_nesting_within_the_bound_is_parsed(capture):
    # 32 levels pass the bound: the body is parsed, and refused only for what it says.
    response = await capture.client.post("/v1/admin/forms", content=deeply_nested_json(31), headers=ADMIN_JSON)
    body = assert_problem(response, 422)
    assert "too_deep" not in {e["code"] for e in body["errors"]}
    assert "key" in {e["field"] for e in body["errors"]}
