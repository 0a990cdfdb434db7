import json
import logging
import time

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


def test_timestamps_keep_their_fractions_and_offsets() -> None:
    # The fraction of a timestamp was once taken for a phone number: "07:45:[phone]+00:00".
    for text in ("clock due at 2026-12-03 07:45:12.345678+00:00", "fired 2026-12-03T07:45:12.345678Z",
                 "at 07:45:12.345678", "lead 12345678-1234-1234-1234-123456789012 routed"):
        assert redact_text(text) == text


def test_digits_inside_an_id_are_not_a_phone_number() -> None:
    text = "key abc5551234567 and rep-5551234567"
    assert redact_text(text) == text
    assert redact_text("call 5551234567 now") == "call [phone] now"


def test_names_and_addresses_in_text_are_redacted() -> None:
    text = redact_text("LeadContact(email='a_b@x.co', first_name='Grace', last_name='Hopper', city='Paris') "
                       '{"full_name": "Grace Brewster Hopper", "street": "Main"}')
    for personal in ("a_b@x.co", "Grace", "Hopper", "Brewster", "Main"):
        assert personal not in text
    assert "first_name=[redacted]" in text and "city='Paris'" in text
    assert redact_text("ships to 1600 Pennsylvania Avenue NW") == "ships to [address] NW"
    assert redact_text("Hauptstraße 5, Berlin") == "[address], Berlin"


def test_address_fields_are_redacted_by_name() -> None:
    assert redact({"street": "1 Main St", "postal_code": "94105", "country": "US"}) == {
        "street": "[redacted]", "postal_code": "[redacted]", "country": "US"
    }


def test_redaction_takes_linear_time_on_hostile_input() -> None:
    # Inputs that make backtracking engines explode: RE2 reads each byte a bounded number of times.
    for hostile in ("1 " * 50_000, "a" * 100_000 + "@", "first_name=" + "'" * 50_000):
        started = time.perf_counter()
        redact_text(hostile)
        assert time.perf_counter() - started < 2.0


def test_a_subject_that_is_an_email_is_redacted_from_the_lead_id() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "activity recorded", (), None)
    with log_context(lead_id="old@example.com"):
        line = json.loads(JsonFormatter("scoring").format(record))
    assert line["lead_id"] == "[email]"
