"""CORS per form: preflights and responses honour the form's allowed origins only."""

from __future__ import annotations

import pytest
import pytest_asyncio

pytestmark = pytest.mark.integration

ALLOWED = "https://www.example.com"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def form(capture):
    return await capture.create_form(allowed_origins=[ALLOWED, "https://*.example.org"])


def preflight_headers(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, idempotency-key"}


@pytest.mark.parametrize("origin", [ALLOWED, "https://www.example.com:443", "https://shop.example.org"])
async def test_preflight_from_an_allowed_origin(capture, form, origin):
    response = await capture.client.options(f"/v1/forms/{form['key']}/submissions",
                                            headers=preflight_headers(origin))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "content-type" in allowed_headers
    assert "idempotency-key" in allowed_headers
    assert response.headers["vary"] == "Origin"


@pytest.mark.parametrize("origin", ["https://evil.example", "http://www.example.com", "https://example.org.evil.io",
                                    "null"])
async def test_preflight_from_another_origin_is_refused(capture, form, origin):
    response = await capture.client.options(f"/v1/forms/{form['key']}/submissions",
                                            headers=preflight_headers(origin))
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


async def test_preflight_for_another_method_is_refused(capture, form):
    response = await capture.client.options(f"/v1/forms/{form['key']}/submissions",
                                            headers=preflight_headers(ALLOWED, "DELETE"))
    assert response.status_code == 403


async def test_preflight_for_an_unknown_form_is_404(capture):
    response = await capture.client.options("/v1/forms/nope/submissions", headers=preflight_headers(ALLOWED))
    assert response.status_code == 404


async def test_responses_carry_cors_headers_for_allowed_origins_only(capture, form):
    url = f"/v1/forms/{form['key']}/submissions"
    accepted = await capture.client.post(url, json={"email": "cors@example.com"}, headers={"Origin": ALLOWED})
    assert accepted.status_code == 202
    assert accepted.headers["access-control-allow-origin"] == ALLOWED
    assert "Retry-After" in accepted.headers["access-control-expose-headers"]
    invalid = await capture.client.post(url, json={"email": "nope"}, headers={"Origin": ALLOWED})
    assert invalid.status_code == 422
    assert invalid.headers["access-control-allow-origin"] == ALLOWED
    malformed = await capture.client.post(url, content=b"{", headers={"Origin": ALLOWED,
                                                                      "Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.headers["access-control-allow-origin"] == ALLOWED


async def test_posts_from_a_disallowed_origin_are_refused(capture, form):
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={"email": "x@example.com"},
                                         headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers


async def test_server_to_server_posts_need_no_origin(capture, form):
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={"email": "s2s@example.com"})
    assert response.status_code == 202
    assert "access-control-allow-origin" not in response.headers


async def test_a_form_without_allowed_origins_takes_no_browser_posts(capture):
    closed = await capture.create_form(allowed_origins=[])
    response = await capture.client.options(f"/v1/forms/{closed['key']}/submissions",
                                            headers=preflight_headers(ALLOWED))
    assert response.status_code == 403


async def test_activities_preflight_uses_the_activity_origins(capture):
    response = await capture.client.options("/v1/activities", headers=preflight_headers("https://any.example"))
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://any.example"
