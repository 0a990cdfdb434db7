import json
import logging

from leadflow_kit.logging import JsonFormatter, log_context, redact, redact_text


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
