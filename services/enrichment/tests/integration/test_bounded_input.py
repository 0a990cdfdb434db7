"""Bodies are bounded before they are read (the CSV import has its own, larger limit), an anonymous
import is refused unread, and an unreadable CSV is a 422, never a 500."""

from __future__ import annotations

import pytest

from leadflow_stack.testing import StreamedBody, assert_problem, bearer, deeply_nested_json

pytestmark = pytest.mark.integration

ADMIN_JSON = {"Content-Type": "application/json", **bearer()}
ADMIN_CSV = {"Content-Type": "text/csv", **bearer()}
MiB = 1024 * 1024


async def test_an_anonymous_csv_import_is_401_before_a_byte_is_read(enrichment):
    body = StreamedBody(b"id,name\n" * 8192, 10_000)
    response = await enrichment.client.post("/v1/admin/accounts/import", content=body,
                                            headers={"Content-Type": "text/csv"})
    assert_problem(response, 401)
    assert body.pulled == 0


async def test_the_csv_import_takes_up_to_its_own_limit_and_no_more(enrichment):
    limit = enrichment.settings.account_import_max_bytes
    declared = await enrichment.client.post("/v1/admin/accounts/import", content=b"x" * (limit + 1),
                                            headers=ADMIN_CSV)
    assert_problem(declared, 413, "body_too_large")
    body = StreamedBody(b"x" * MiB, limit // MiB + 5)
    streamed = await enrichment.client.post("/v1/admin/accounts/import", content=body, headers=ADMIN_CSV)
    assert_problem(streamed, 413, "body_too_large")
    assert body.pulled <= limit // MiB + 2
    # Above the 64 KiB of other routes, and read.
    rows = b"name,domains\n" + b"".join(b"Acme %d,acme%d.com\n" % (i, i) for i in range(4_000))
    assert len(rows) > 64 * 1024
    accepted = await enrichment.client.post("/v1/admin/accounts/import", content=rows, headers=ADMIN_CSV)
    assert accepted.status_code == 200, accepted.text


async def test_other_routes_keep_the_small_default_limit(enrichment):
    response = await enrichment.client.post("/v1/admin/accounts", headers=ADMIN_JSON,
                                            content=b'{"name": "' + b"x" * (64 * 1024) + b'"}')
    assert_problem(response, 413, "body_too_large")
    body = StreamedBody(b" " * 1024, 200)
    streamed = await enrichment.client.post("/v1/admin/accounts", headers=ADMIN_JSON, content=body)
    assert_problem(streamed, 413, "body_too_large")
    assert body.pulled <= 66


@pytest.mark.parametrize("content", [
    b"name,domains\n\xff\xfe\xfa,acme.com\n",
    b"name,domains\nAc\x00me,acme.com\n",
    b"name\n\"" + b"x" * 200_000 + b"\"\n",
])
async def test_an_unreadable_csv_is_422(enrichment, content):
    response = await enrichment.client.post("/v1/admin/accounts/import", content=content, headers=ADMIN_CSV)
    assert_problem(response, 422, "csv")


async def test_deeply_nested_json_is_422(enrichment):
    response = await enrichment.client.post("/v1/admin/accounts", headers=ADMIN_JSON,
                                            content=deeply_nested_json(10_000))
    assert_problem(response, 422, "too_deep")
