"""Reading bodies strictly: every bad body is a BadBody with a status and a reason, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow_capture import bodies
from leadflow_capture.bodies import BadBody


def test_json_values_become_form_values():
    parsed = bodies.parse_body("application/json", b'{"a": "x", "b": 2, "c": true, "d": null, "e": [1, "y"]}')
    assert parsed.pairs == [("a", "x"), ("b", "2"), ("c", "true"), ("d", ""), ("e", "1, y")]
    assert not parsed.is_form_post


def test_urlencoded_keeps_repeats_and_blanks():
    parsed = bodies.parse_body("application/x-www-form-urlencoded; charset=UTF-8", b"a=1&a=2&b=&c=%C3%A9")
    assert parsed.pairs == [("a", "1"), ("a", "2"), ("b", ""), ("c", "é")]
    assert parsed.is_form_post


def test_multipart_text_fields():
    body = (b'--B\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.com\r\n'
            b'--B\r\nContent-Disposition: form-data; name="note"\r\n\r\nl\xc3\xa9\r\n--B--\r\n')
    assert bodies.parse_body("multipart/form-data; boundary=B", body).pairs == [("email", "a@example.com"),
                                                                                   ("note", "lé")]


@pytest.mark.parametrize(("content_type", "body", "status", "code"), [
    (None, b"a=1", 415, "missing_content_type"),
    ("text/xml", b"<a/>", 415, "unsupported_media_type"),
    ("application/json; charset=utf-16", b"{}", 415, "unsupported_charset"),
    ("application/json", b"{", 400, "malformed_json"),
    ("application/json", b"  ", 400, "empty_body"),
    ("application/json", b"42", 400, "not_an_object"),
    ("application/json", b'{"a": {"b": 1}}', 422, "invalid_type"),
    ("application/json", b'{"a": [[1]]}', 422, "invalid_type"),
    ("application/json", b'{"a": "\\udc00"}', 400, "invalid_unicode"),
    ("application/json", b"\xc3\x28", 400, "invalid_utf8"),
    ("application/x-www-form-urlencoded", b"a=%C3%28", 400, "invalid_utf8"),
    ("multipart/form-data", b"", 400, "malformed_multipart"),
    ("multipart/form-data; boundary=B", b"--B\r\nno headers", 400, "malformed_multipart"),
    ("multipart/form-data; boundary=B", b'--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--\r\n', 400,
     "malformed_multipart"),
])
def test_bad_bodies(content_type, body, status, code):
    with pytest.raises(BadBody) as caught:
        bodies.parse_body(content_type, body)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.errors and caught.value.errors[0].message


def test_vendor_json_types_are_json():
    assert bodies.parse_body("application/vnd.leadflow+json", b'{"a": "b"}').pairs == [("a", "b")]


@settings(max_examples=400, deadline=None)
@given(content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                     "multipart/form-data; boundary=B", "multipart/form-data; boundary=",
                                     "text/plain", "", "application/json; charset=\x00"]),
       body=st.binary(max_size=400) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_body_parses_or_is_refused_with_a_4xx(content_type, body):
    try:
        parsed = bodies.parse_body(content_type, body)
    except BadBody as exc:
        assert exc.status in (400, 413, 415, 422)
        return
    for name, value in parsed.pairs:
        name.encode("utf-8")
        value.encode("utf-8")


@settings(max_examples=300, deadline=None)
@given(content_type=st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=80)
       | st.builds(lambda p, b: f"multipart/form-data; {p}={b}", st.sampled_from(["boundary", "charset", ""]),
                   st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=80)),
       body=st.binary(max_size=200))
def test_any_content_type_header_is_read_or_refused_with_a_4xx(content_type, body):
    try:
        bodies.parse_body(content_type, body)
    except BadBody as exc:
        assert exc.status in (400, 415, 422)
