"""Turning a raw request body into form fields, strictly: a bad body gets a clear 4xx, never a 500.

Parsing is done here rather than by FastAPI/Starlette because form posts must reject invalid
UTF-8 (Starlette silently re-decodes it as Latin-1) and because one endpoint takes three encodings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from leadflow_kit.errors import FieldError

JSON = "application/json"
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORM_TYPES = (URLENCODED, MULTIPART)
ACCEPTED_TYPES = (JSON, URLENCODED, MULTIPART)
UTF8_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


class BadBody(Exception):
    """A body capture cannot read; ``status`` is 400, 413, 415 or 422."""

    def __init__(self, status: int, code: str, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or [FieldError(field="body", code=code, message=message)]


@dataclass(frozen=True)
class ParsedBody:
    media_type: str
    pairs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_form_post(self) -> bool:
        return self.media_type in FORM_TYPES


def media_type_of(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    kind, params = parse_options_header(content_type)
    return (
        kind.decode("latin-1").lower(),
        {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in params.items()},
    )


def is_json_type(media_type: str) -> bool:
    return media_type == JSON or (media_type.startswith("application/") and media_type.endswith("+json"))


def parse_body(content_type: str | None, body: bytes) -> ParsedBody:
    media_type, params = media_type_of(content_type)
    if not media_type:
        raise BadBody(415, "missing_content_type",
                      f"Content-Type is required; send one of {', '.join(ACCEPTED_TYPES)}")
    charset = params.get("charset", "utf-8").lower()
    if media_type != MULTIPART and charset not in UTF8_CHARSETS:
        raise BadBody(415, "unsupported_charset", f"charset {charset!r} is not supported; send UTF-8")
    if is_json_type(media_type):
        return ParsedBody(JSON, decode_json(body))
    if media_type == URLENCODED:
        return ParsedBody(URLENCODED, decode_urlencoded(body))
    if media_type == MULTIPART:
        return ParsedBody(MULTIPART, decode_multipart(params.get("boundary"), body))
    raise BadBody(415, "unsupported_media_type",
                  f"Content-Type {media_type!r} is not supported; send one of {', '.join(ACCEPTED_TYPES)}")


def decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(400, "invalid_utf8", f"{what} is not valid UTF-8 (byte {exc.start})") from None


def load_json(body: bytes) -> Any:
    """A JSON document whose every string is storable text (UTF-8, no NUL)."""
    text = decode_utf8(body, "the JSON body")
    if not text.strip():
        raise BadBody(400, "empty_body", "the body is empty; send a JSON object")
    try:
        document = json.loads(text)
    except RecursionError:
        raise BadBody(400, "malformed_json", "the JSON body nests too deeply") from None
    except ValueError as exc:
        raise BadBody(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # JSON may carry lone surrogates ("\ud800") that no UTF-8 text can hold.
        raise BadBody(400, "invalid_unicode", "the JSON body contains an unpaired surrogate") from None
    except (RecursionError, ValueError):
        raise BadBody(400, "malformed_json", "the JSON body nests too deeply") from None
    return document


def decode_json(body: bytes) -> list[tuple[str, str]]:
    document = load_json(body)
    if not isinstance(document, dict):
        raise BadBody(400, "not_an_object",
                      f"the JSON body must be an object of form fields, not {type(document).__name__}")
    pairs: list[tuple[str, str]] = []
    errors: list[FieldError] = []
    for name, value in document.items():
        flattened = _scalar(value)
        if flattened is None:
            errors.append(FieldError(field=name[:100], code="invalid_type",
                                     message=f"{name[:100]} must be a string, number, boolean, null or a list of them"))
            continue
        pairs.append((name, flattened))
    if errors:
        raise BadBody(422, "invalid_type", "some fields have values that are not form values", errors)
    return pairs


def _scalar(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        parts = [_scalar(item) if not isinstance(item, list | dict) else None for item in value]
        if any(part is None for part in parts):
            return None
        return ", ".join(p for p in parts if p)
    return None


def decode_urlencoded(body: bytes) -> list[tuple[str, str]]:
    text = decode_utf8(body, "the form body")
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadBody(400, "invalid_utf8", "a percent-encoded value is not valid UTF-8") from None
    except ValueError as exc:
        raise BadBody(400, "malformed_form", f"the form body is malformed: {exc}") from None


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)


def decode_multipart(boundary: str | None, body: bytes) -> list[tuple[str, str]]:
    if not boundary:
        raise BadBody(400, "malformed_multipart", "multipart/form-data needs a boundary parameter")
    parts: list[_Part] = []
    header_name = bytearray()
    header_value = bytearray()
    ended = False

    def on_part_begin() -> None:
        parts.append(_Part())

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.extend(data[start:end])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1].headers.append((bytes(header_name).lower(), bytes(header_value)))
        header_name.clear()
        header_value.clear()

    def on_end() -> None:
        nonlocal ended
        ended = True

    try:
        parser = MultipartParser(boundary, {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_end": on_end,
        })
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError) as exc:
        raise BadBody(400, "malformed_multipart", f"the multipart body is malformed: {exc}") from None
    if not ended:
        raise BadBody(400, "malformed_multipart", "the multipart body is truncated (no closing boundary)")
    pairs: list[tuple[str, str]] = []
    errors: list[FieldError] = []
    for part in parts:
        disposition = dict(part.headers).get(b"content-disposition")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise BadBody(400, "malformed_multipart", "a multipart part has no Content-Disposition name")
        name = decode_utf8(options[b"name"], "a field name")
        if b"filename" in options:
            errors.append(FieldError(field=name[:100], code="file_not_accepted",
                                     message="forms take text fields only; files are not accepted"))
            continue
        pairs.append((name, decode_utf8(bytes(part.data), f"field {name[:100]!r}")))
    if errors:
        raise BadBody(422, "file_not_accepted", "files are not accepted", errors)
    return pairs
