"""Every class of bad input gets a clear 4xx with a reason and field errors, never a 500."""

from __future__ import annotations

import pytest
import pytest_asyncio

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json", "Accept": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
BOUNDARY = "XyZ123"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Accept": "application/json"}


def multipart(*parts: str, close: bool = True) -> bytes:
    body = "".join(f"--{BOUNDARY}\r\n{part}\r\n" for part in parts)
    return (body + (f"--{BOUNDARY}--\r\n" if close else "")).encode()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def form(capture):
    return await capture.create_form(required_fields=["email", "company"])


CASES = [
    # (id, headers, body, status, code, field)
    ("malformed_json", JSON, b'{"email": ', 400, "malformed_json", "body"),
    ("json_array", JSON, b'["email"]', 400, "not_an_object", "body"),
    ("json_nested_object", JSON, b'{"email": "a@b.co", "company": {"name": "x"}}', 422, "invalid_type", "company"),
    ("json_invalid_utf8", JSON, b'{"email": "\xff\xfe@b.co"}', 400, "invalid_utf8", "body"),
    ("json_lone_surrogate", JSON, b'{"email": "a@b.co", "company": "\\ud800"}', 400, "invalid_unicode", "body"),
    ("json_empty", JSON, b"", 400, "empty_body", "body"),
    ("json_deep", JSON, b"[" * 20000 + b"]" * 20000, 422, "too_deep", "body"),
    ("json_huge_number", JSON, b'{"email": ' + b"9" * 5000 + b"}", 400, "malformed_json", "body"),
    ("json_nul", JSON, b'{"email": "a@b.co", "company": "A\\u0000B"}', 422, "invalid_characters", "company"),
    ("form_invalid_utf8_raw", FORM, b"email=\xff@b.co&company=x", 400, "invalid_utf8", "body"),
    ("form_invalid_utf8_percent", FORM, b"email=%FF%FE@b.co&company=x", 400, "invalid_utf8", "body"),
    ("form_control_chars", FORM, b"email=a@b.co&company=A%07B", 422, "invalid_characters", "company"),
    ("text_plain", {"Content-Type": "text/plain"}, b"email=a@b.co", 415, "unsupported_media_type", "body"),
    ("no_content_type", {}, b"email=a@b.co", 415, "missing_content_type", "body"),
    ("latin1_charset", {"Content-Type": "application/x-www-form-urlencoded; charset=iso-8859-1",
                        "Accept": "application/json"}, b"email=a@b.co", 415, "unsupported_charset", "body"),
    ("multipart_no_boundary", {"Content-Type": "multipart/form-data", "Accept": "application/json"},
     b"--x\r\n", 400, "malformed_multipart", "body"),
    ("multipart_truncated", MULTIPART,
     multipart('Content-Disposition: form-data; name="email"\r\n\r\na@b.co', close=False),
     400, "malformed_multipart", "body"),
    ("multipart_garbage", MULTIPART, b"this is not multipart at all", 400, "malformed_multipart", "body"),
    ("multipart_file", MULTIPART,
     multipart('Content-Disposition: form-data; name="email"\r\n\r\na@b.co',
               'Content-Disposition: form-data; name="cv"; filename="cv.pdf"\r\nContent-Type: application/pdf'
               "\r\n\r\n%PDF-1.4"),
     422, "file_not_accepted", "cv"),
    ("missing_required", JSON, b'{"email": "a@b.co"}', 422, "required", "company"),
    ("invalid_email", JSON, b'{"email": "not-an-email", "company": "x"}', 422, "invalid_email", "email"),
    ("value_too_long", JSON, b'{"email": "a@b.co", "company": "' + b"x" * 2001 + b'"}', 422, "too_long", "company"),
    ("too_many_fields", JSON,
     ("{" + ",".join(f'"f{i}": "v"' for i in range(101)) + ',"email": "a@b.co", "company": "x"}').encode(),
     422, "too_many_fields", "body"),
    ("field_name_too_long", JSON, b'{"email": "a@b.co", "company": "x", "' + b"n" * 101 + b'": "v"}',
     422, "field_name_too_long", None),
]


@pytest.mark.parametrize(("headers", "body", "status", "code", "field"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_input_is_refused_with_a_reason(capture, form, headers, body, status, code, field):
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions", content=body, headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["detail"]
    codes = {e["code"] for e in payload["errors"]}
    assert code in codes, payload
    if field is not None:
        assert any(e["field"] == field and e["code"] == code for e in payload["errors"]), payload
    assert all(e["message"] for e in payload["errors"])


async def test_multipart_part_with_invalid_utf8_is_400(capture, form):
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n").encode() + b"\xff\xfe" + (
        f"\r\n--{BOUNDARY}--\r\n").encode()
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions", content=body, headers=MULTIPART)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_utf8"


async def test_body_over_the_limit_is_413_whether_declared_or_streamed(capture, form):
    big = b'{"email": "a@b.co", "company": "' + b"x" * (70 * 1024) + b'"}'
    declared = await capture.client.post(f"/v1/forms/{form['key']}/submissions", content=big, headers=JSON)
    assert declared.status_code == 413
    assert declared.json()["errors"][0]["code"] == "body_too_large"

    async def chunks():
        for _ in range(70):
            yield b"x" * 1024

    streamed = await capture.client.post(f"/v1/forms/{form['key']}/submissions", content=chunks(), headers=JSON)
    assert streamed.status_code == 413


async def test_unknown_form_is_404(capture):
    response = await capture.client.post("/v1/forms/no-such-form/submissions", json={"email": "a@b.co"})
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "unknown_form"


async def test_archived_form_is_410_for_submissions_embed_and_preflight(capture, admin_headers):
    archived = await capture.create_form()
    key = archived["key"]
    assert (await capture.client.delete(f"/v1/admin/forms/{key}", headers=admin_headers)).status_code == 204
    response = await capture.client.post(f"/v1/forms/{key}/submissions", json={"email": "a@b.co"})
    assert response.status_code == 410
    assert response.json()["errors"][0]["code"] == "form_archived"
    assert (await capture.client.get(f"/v1/forms/{key}/embed.js")).status_code == 410
    preflight = await capture.client.options(
        f"/v1/forms/{key}/submissions",
        headers={"Origin": "https://a.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 410


async def test_consent_is_required_when_the_form_says_so(capture):
    form = await capture.create_form(consent_required=True, consent_text="Contact me", consent_version="1")
    url = f"/v1/forms/{form['key']}/submissions"
    missing = await capture.client.post(url, json={"email": "a@b.co"})
    assert missing.status_code == 422
    assert missing.json()["errors"] == [{"field": "consent", "code": "consent_required", "message": "Contact me"}]
    declined = await capture.client.post(url, json={"email": "a@b.co", "consent": "no"})
    assert declined.status_code == 422


async def test_errors_name_the_field_as_the_page_posts_it(capture):
    form = await capture.create_form(field_mapping={"your-email": "email"})
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={"name": "x"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "your-email"


async def test_invalid_browser_post_goes_to_error_url_with_field_errors(capture):
    form = await capture.create_form(error_url="https://www.example.com/oops", required_fields=["email", "company"])
    response = await capture.client.post(
        f"/v1/forms/{form['key']}/submissions", content="email=nope",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"https://www.example.com/oops?form={form['key']}")
    assert "error.email=invalid_email" in location
    assert "error.company=required" in location


async def test_invalid_browser_post_without_error_url_gets_an_html_page(capture):
    form = await capture.create_form()
    response = await capture.client.post(
        f"/v1/forms/{form['key']}/submissions", content="first_name=<b>x</b>",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "email is required" in response.text


async def test_idempotency_key_too_long_is_400(capture, form):
    response = await capture.client.post(f"/v1/forms/{form['key']}/submissions",
                                         json={"email": "a@b.co", "company": "x"},
                                         headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_idempotency_key"


async def test_fields_that_would_make_an_oversized_event_are_refused(start_capture):
    async with start_capture(max_body_bytes=256 * 1024, max_field_length=5000) as capture:
        form = await capture.create_form()
        fields = {f"field_{i}": "x" * 4000 for i in range(20)}
        response = await capture.client.post(f"/v1/forms/{form['key']}/submissions",
                                             json={"email": "big@example.com", **fields})
        assert response.status_code == 422
        assert response.json()["errors"][0]["code"] == "too_large"
