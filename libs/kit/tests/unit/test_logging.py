import json
import logging

import pytest

from leadflow_kit.logging import JsonFormatter, log_context, redact, redact_text
from leadflow_stack.timing import LINEAR_8X, growth, repeated


def test_emails_and_phone_numbers_are_redacted_from_messages() -> None:
    text = redact_text("lead ada@example.com called from +1 (415) 555-0100 about order 42")
    assert "ada@example.com" not in text and "555-0100" not in text
    assert "[email]" in text and "[phone]" in text and "order 42" in text


def test_personal_fields_are_redacted_by_name_at_any_depth() -> None:
    assert redact({"contact": {"email": "a@b.co", "first_name": "Ada", "company": "Acme"}}) == {
        "contact": {"email": "[redacted]", "first_name": "[redacted]", "company": "Acme"}
    }


def test_log_lines_are_json_with_lead_and_correlation_ids() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "routed %s", ("grace@acme.com",), None)
    record.phone = "+14155550100"
    with log_context(lead_id="L1", correlation_id="C1"):
        line = json.loads(JsonFormatter("routing").format(record))
    assert line["lead_id"] == "L1" and line["correlation_id"] == "C1" and line["service"] == "routing"
    assert line["message"] == "routed [email]"
    assert line["phone"] == "[redacted]"


def test_addresses_and_dates_are_not_mistaken_for_phone_numbers() -> None:
    text = "capture started on 127.0.0.1:8001 at 2026-11-23 09:30:01"
    assert redact_text(text) == text


@pytest.mark.parametrize("piece", ["a", "a.", "(1-", "1.", "a@a.", "+1 "])
def test_redaction_is_linear_in_the_line(piece: str) -> None:
    # A message field may hold 10,000 characters; unbounded repeats once made its redaction quadratic.
    ratio = growth(redact_text, repeated(piece, 1250), repeated(piece, 10000))
    assert ratio < LINEAR_8X, f"10,000 characters of {piece!r} took {ratio:.0f}x 1,250"


def test_bounded_repeats_still_redact_long_addresses_and_formatted_numbers() -> None:
    text = redact_text(f"{'x' * 60}@{'sub.' * 40}example.com and +44 (0) 20 7946 0958 ext")
    assert text == "[email] and [phone] ext"
