"""A model upload is bounded (1 MiB, other routes 64 KiB), refused unread without a key, and a YAML
alias bomb or a deeply nested document is a 422 naming the body, never a hang or a 500."""

from __future__ import annotations

from typing import Any

import pytest

from leadflow_stack.testing import StreamedBody, assert_problem, bearer, deeply_nested_json

pytestmark = pytest.mark.integration

ADMIN_YAML = {"Content-Type": "application/yaml", **bearer()}
ADMIN_JSON = {"Content-Type": "application/json", **bearer()}
MODELS = "/v1/admin/scoring-models"

# Nine levels of nine aliases: 387,420,489 strings once expanded, from a few hundred bytes.
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
) + "name: bomb\n"


async def test_a_yaml_alias_bomb_is_422(scoring: Any):
    for path in (MODELS, f"{MODELS}/validate"):
        response = await scoring.client.post(path, content=ALIAS_BOMB.encode(), headers=ADMIN_YAML)
        if path == MODELS:
            assert_problem(response, 422, "alias_not_allowed")
        else:
            assert response.status_code == 200
            assert response.json()["valid"] is False
            assert response.json()["errors"][0]["code"] == "alias_not_allowed"


async def test_deep_nesting_is_422_in_yaml_and_in_json(scoring: Any):
    yaml_deep = await scoring.client.post(MODELS, content=b"name: [" + b"[" * 5000 + b"]" * 5000 + b"]",
                                          headers=ADMIN_YAML)
    assert_problem(yaml_deep, 422, "too_deep")
    json_deep = await scoring.client.post(MODELS, content=deeply_nested_json(50_000), headers=ADMIN_JSON)
    assert_problem(json_deep, 422, "too_deep")
    dry_run = await scoring.client.post(f"{MODELS}/dry-run", content=deeply_nested_json(40), headers=ADMIN_JSON)
    assert_problem(dry_run, 422, "too_deep")


async def test_a_model_upload_may_be_a_mebibyte_and_no_more(scoring: Any):
    comment = b"# " + b"x" * 1000 + b"\n"
    big_but_allowed = comment * 600 + b"name: [\n"
    response = await scoring.client.post(MODELS, content=big_but_allowed, headers=ADMIN_YAML)
    # Read and parsed (a syntax error), not refused for its size.
    assert_problem(response, 422, "syntax")
    too_big = await scoring.client.post(MODELS, content=comment * 1100, headers=ADMIN_YAML)
    assert_problem(too_big, 413, "body_too_large")
    body = StreamedBody(comment, 2000)
    streamed = await scoring.client.post(MODELS, content=body, headers=ADMIN_YAML)
    assert_problem(streamed, 413, "body_too_large")
    assert body.pulled < 1100


async def test_an_anonymous_upload_is_401_before_a_byte_is_read(scoring: Any):
    body = StreamedBody(b"# x\n" * 16384, 10_000)
    response = await scoring.client.post(MODELS, content=body, headers={"Content-Type": "application/yaml"})
    assert_problem(response, 401)
    assert body.pulled == 0
