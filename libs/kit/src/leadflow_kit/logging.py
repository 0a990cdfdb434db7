"""JSON logs carrying lead id and correlation id, with personal data redacted."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import re2

lead_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("lead_id", default=None)
correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

_NAME_KEYS = ("first_name", "last_name", "full_name", "name", "salutation")
_ADDRESS_KEYS = ("address", "street", "street_address", "address_line1", "address_line2", "postal_code", "zip",
                 "zip_code", "postcode")
PERSONAL_KEYS = frozenset(
    {*_NAME_KEYS, *_ADDRESS_KEYS, "email", "phone", "phone_e164", "ip", "source_ip"}
)
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

# One RE2 pattern (linear time: no log line can make it slow) scanned left to right; at each
# position the first alternative that matches wins. Dates, times, addresses and ids with digits
# are consumed as whole tokens, so a phone number is only ever found where a token starts: the
# digits inside an id, or the fraction of a timestamp, never look like one.
_STREET_TYPES = (
    "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|square|sq|terrace|"
    "parkway|pkwy|highway|hwy|way"
)
_OFFSET = r"(?:Z|[+-]\d{2}(?::?\d{2})?)"
_FIELD_KEYS = "|".join(sorted({*_NAME_KEYS, *_ADDRESS_KEYS, "email", "phone", "phone_e164"}, key=len, reverse=True))
_TEXT_PATTERN = (
    r"(?P<email>[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    # first_name='Ada', "last_name": "Lovelace", street=Main: the key stays, its value goes.
    rf"|(?P<field>\b(?:{_FIELD_KEYS})"
    r"""['"]?\s*[:=]\s*)(?:'[^']*'|"[^"]*"|[^\s,;&)}\]]+)"""
    r"|(?:[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}"  # uuids
    rf"|\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]\d{{2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?{_OFFSET}?)?"  # dates, datetimes
    rf"|\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:[.,]\d+)?)?{_OFFSET}?"  # times
    r"|\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?)"  # IPv4 addresses (of services, not visitors: those are fields)
    rf"|(?P<street>\d{{1,6}}[A-Za-z]?,?(?:\s+[A-Za-z][\w.'-]*){{1,4}}\s+(?i:{_STREET_TYPES})\b\.?"
    r"|[A-Za-z][\w'-]*(?i:stra(?:ss|ß)e|weg|gasse|platz)\s+\d{1,5}[A-Za-z]?)"
    r"|(?P<phone>\+?\(?\d[\d ().-]{6,}\d)(?P<phone_tail>[\w-]*)"
    # A word with a digit after its first letter (``abc-5551234567``): an id, kept whole.
    r"|[A-Za-z_][A-Za-z_-]*\d[\w-]*"
)

# Matched on UTF-8 bytes: the binding's str path maps every match's offsets back to characters,
# which made a log line eight times as slow.
_TEXT = re2.compile(_TEXT_PATTERN.encode())
_GROUP = {name.decode() if isinstance(name, bytes) else name: index for name, index in _TEXT.groupindex.items()}
_EMAIL, _FIELD, _STREET, _PHONE, _PHONE_TAIL = (
    _GROUP[name] for name in ("email", "field", "street", "phone", "phone_tail")
)


def _replace(match: Any) -> bytes:
    if match.group(_EMAIL) is not None:
        return b"[email]"
    if match.group(_FIELD) is not None:
        return bytes(match.group(_FIELD)) + b"[redacted]"
    if match.group(_STREET) is not None:
        return b"[address]"
    if match.group(_PHONE) is not None and not match.group(_PHONE_TAIL):
        return b"[phone]"
    return bytes(match.group(0))


def redact_text(text: str) -> str:
    return bytes(_TEXT.sub(_replace, text.encode())).decode()


def redact(value: Any, key: str | None = None) -> Any:
    if key is not None and key.lower() in PERSONAL_KEYS and value not in (None, ""):
        return "[redacted]"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        if (lead_id := lead_id_var.get()) is not None:
            # An event's subject; an old activity's subject could be an email.
            entry["lead_id"] = redact_text(lead_id)
        if (correlation_id := correlation_id_var.get()) is not None:
            entry["correlation_id"] = correlation_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = redact(value, key)
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


@contextmanager
def log_context(*, lead_id: str | None = None, correlation_id: str | None = None) -> Iterator[None]:
    lead_token = lead_id_var.set(lead_id) if lead_id is not None else None
    corr_token = correlation_id_var.set(correlation_id) if correlation_id is not None else None
    try:
        yield
    finally:
        if lead_token is not None:
            lead_id_var.reset(lead_token)
        if corr_token is not None:
            correlation_id_var.reset(corr_token)
