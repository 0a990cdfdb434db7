"""A service client whose key the service refuses (or that had none) takes the key ``provision-keys`` keeps now,
once, and sends the request again; with no other key kept (or every key given) the refusal stands."""

from __future__ import annotations

import json

import httpx
import pytest

from leadflow_console.clients import ServiceClient, ServiceError

CURRENT = "lf_current"


def capture(requests: list[str]) -> httpx.MockTransport:
    """A capture that knows only CURRENT; every request's key is kept in ``requests``."""

    def answer(request: httpx.Request) -> httpx.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        requests.append(key)
        if key != CURRENT:
            return httpx.Response(401, json={"detail": "invalid API key"})
        return httpx.Response(201, json={"made": json.loads(request.content)})

    return httpx.MockTransport(answer)


def client(requests: list[str], key: str | None, kept: str | None) -> tuple[ServiceClient, list[tuple[str, str]]]:
    asked: list[tuple[str, str]] = []

    async def replacement(service: str, refused: str) -> str | None:
        asked.append((service, refused))
        return kept if kept != refused else None

    http = httpx.AsyncClient(base_url="http://capture", headers={"Authorization": f"Bearer {key}"} if key else {},
                             transport=capture(requests))
    return ServiceClient("capture", http, replacement), asked


async def test_a_refused_key_is_replaced_by_the_kept_one_and_the_request_sent_once_more() -> None:
    requests: list[str] = []
    service, asked = client(requests, "lf_replaced", kept=CURRENT)
    assert await service.post("/v1/admin/forms", json={"key": "f"}) == {"made": {"key": "f"}}
    assert asked == [("capture", "lf_replaced")] and requests == ["lf_replaced", CURRENT]
    assert await service.post("/v1/admin/forms", json={"key": "g"}) == {"made": {"key": "g"}}
    assert requests[-1] == CURRENT and len(asked) == 1  # the new key stays


async def test_a_key_kept_after_serve_started_is_taken_on_the_first_refusal() -> None:
    requests: list[str] = []
    service, asked = client(requests, None, kept=CURRENT)
    assert await service.post("/v1/admin/forms", json={"key": "f"}) == {"made": {"key": "f"}}
    assert asked == [("capture", "")] and requests == ["", CURRENT]


async def test_without_another_kept_key_the_refusal_stands() -> None:
    requests: list[str] = []
    service, asked = client(requests, "lf_replaced", kept="lf_replaced")
    with pytest.raises(ServiceError) as refused:
        await service.get("/v1/admin/forms")
    assert refused.value.status == 401 and requests == ["lf_replaced"] and len(asked) == 1

    given = ServiceClient("capture", httpx.AsyncClient(base_url="http://capture", transport=capture(requests),
                                                       headers={"Authorization": "Bearer lf_given"}))
    with pytest.raises(ServiceError):
        await given.get("/v1/admin/forms")
    assert requests[-1] == "lf_given" and requests.count("lf_given") == 1
