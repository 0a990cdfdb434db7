"""JSON logs carrying lead id and correlation id, with personal data redacted."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

lead_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("lead_id", default=None)
correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

PERSONAL_KEYS = frozenset(
    {"email", "phone", "first_name", "last_name", "full_name", "name", "ip", "source_ip", "phone_e164"}
)
# Every repeat is bounded (a mailbox's local part has at most 64 characters, a domain 253, a phone
# number with its separators fits in 32): the search tries each position, and an unbounded run let
# each try read to the end of the text, so a 10,000-character line took seconds (quadratic).
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,63}")
# Eight to 32 digits with common separators: phone numbers, not ids or timestamps with letters.
_PHONE = re.compile(r"(?<![\w-])\+?\d[\d ().\-]{6,30}\d(?![\w-])")
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


_NOT_A_PHONE = re.compile(r"\d{1,3}(\.\d{1,3}){3}(:\d+)?|\d{4}-\d{2}-\d{2}.*")


def _phone_or_keep(match: re.Match[str]) -> str:
    # IP addresses and dates look like digit runs too; they are not personal data.
    return match.group(0) if _NOT_A_PHONE.fullmatch(match.group(0)) else "[phone]"


def redact_text(text: str) -> str:
    return _PHONE.sub(_phone_or_keep, _EMAIL.sub("[email]", text))


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
            entry["lead_id"] = lead_id
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
