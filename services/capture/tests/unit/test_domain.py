"""Form rules as plain data: mapping, validation, spam, attribution, consent, origins, redirects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadflow_capture import domain
from leadflow_capture.domain import FormDefinition, Limits

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def form(**fields) -> FormDefinition:
    return FormDefinition(key="f", name="F", **fields)


def test_posted_fields_map_onto_contact_attribution_and_custom_fields():
    submission = domain.map_submission(
        form(field_mapping={"your-email": "email", "org": "company", "source": "heard_from"}),
        {"your-email": " ada@example.com ", "org": "Engines", "source": "podcast", "utm_source": "news",
         "page_url": "https://x.example/p", "document_referrer": "https://r.example", "empty": "  "},
    )
    assert submission.contact.email == "ada@example.com"
    assert submission.contact.company == "Engines"
    assert submission.custom_fields == {"heard_from": "podcast"}
    assert submission.attribution.utm_source == "news"
    assert submission.attribution.landing_page == "https://x.example/p"
    assert submission.attribution.referrer == "https://r.example"
    assert submission.posted_names["email"] == "your-email"


def test_control_fields_never_become_custom_fields():
    submission = domain.map_submission(form(honeypot_field="website_url"), {
        "email": "a@example.com", "website_url": "spam", "_rendered_at": "1", "_anything": "x",
        "visitor_id": "v-1", "consent": "on",
    })
    assert submission.custom_fields == {}
    assert submission.honeypot == "spam"
    assert submission.rendered_at == "1"
    assert submission.visitor_id == "v-1"
    assert submission.consent_given is True


@pytest.mark.parametrize(("value", "given"), [("on", True), ("TRUE", True), ("yes", True), ("1", True),
                                              ("", False), ("no", False), ("false", False), ("0", False)])
def test_consent_values(value, given):
    assert domain.map_submission(form(), {"consent": value}).consent_given is given


def test_repeated_fields_are_joined():
    assert domain.merge_fields([("a", "1"), ("b", "x"), ("a", "2"), ("a", "")]) == {"a": "1, 2", "b": "x"}


def errors_of(definition: FormDefinition, posted: dict[str, str], limits: Limits | None = None):
    return [(e.field, e.code) for e in domain.validate_submission(definition, domain.map_submission(definition, posted),
                                                                  limits)]


def test_required_fields_are_reported_under_the_posted_name():
    definition = form(field_mapping={"your-email": "email"}, required_fields=("email", "company"))
    assert errors_of(definition, {}) == [("your-email", "required"), ("company", "required")]


def test_a_required_custom_field_is_satisfied_by_a_custom_value():
    assert errors_of(form(required_fields=("heard_from",)), {"heard_from": "tv"}) == []


@pytest.mark.parametrize("email", ["nope", "@example.com", "a@", "a@b", "a b@example.com", "a@@example.com",
                                   "x" * 250 + "@example.com"])
def test_invalid_emails(email):
    assert errors_of(form(), {"email": email}) == [("email", "invalid_email")]


@pytest.mark.parametrize("email", ["a@example.com", "first.last+tag@sub.example.co.uk", "ÄDA@bücher.de"])
def test_valid_emails(email):
    assert errors_of(form(), {"email": email}) == []


def test_lengths_are_limited_with_room_for_messages():
    limits = Limits(max_field_length=10, max_message_length=20)
    assert errors_of(form(), {"email": "a@ex.co", "company": "x" * 11}, limits) == [("company", "too_long")]
    assert errors_of(form(), {"email": "a@ex.co", "message": "x" * 20}, limits) == []
    assert errors_of(form(), {"email": "a@ex.co", "message": "x" * 21}, limits) == [("message", "too_long")]


def test_control_characters_are_refused_but_newlines_are_fine():
    assert errors_of(form(), {"email": "a@ex.co", "message": "line\r\nline\ttab"}) == []
    assert errors_of(form(), {"email": "a@ex.co", "company": "a\x00b"}) == [("company", "invalid_characters")]


def test_field_count_and_name_limits():
    limits = Limits(max_fields=2, max_field_name_length=5)
    codes = [e.code for e in domain.field_count_errors({"a": "", "b": "", "toolong": ""}, limits)]
    assert codes == ["too_many_fields", "field_name_too_long"]
    assert [e.code for e in domain.field_count_errors({"a\x00": ""}, Limits())] == ["invalid_characters"]


def test_consent_required_uses_the_consent_text_as_message():
    definition = form(consent_required=True, consent_text="Agree to be contacted", consent_version="v1")
    errors = domain.validate_submission(definition, domain.map_submission(definition, {"email": "a@ex.co"}))
    assert [(e.field, e.code, e.message) for e in errors] == [("consent", "consent_required", "Agree to be contacted")]


def test_consent_record_carries_version_time_and_ip():
    definition = form(consent_version="v7")
    submission = domain.map_submission(definition, {"consent": "yes"})
    record = domain.consent_record(definition, submission, NOW, "198.51.100.1")
    assert record is not None
    assert (record.given, record.text_version, record.given_at, record.ip) == (True, "v7", NOW, "198.51.100.1")
    assert domain.consent_record(definition, domain.map_submission(definition, {}), NOW, None) is None


def test_honeypot_is_spam():
    definition = form()
    assert domain.spam_reason(definition, domain.map_submission(definition, {"_hp": "x"}), NOW) == "honeypot"


@pytest.mark.parametrize(("rendered", "reason"), [
    (NOW - timedelta(seconds=1), "filled_too_fast"),
    (NOW - timedelta(seconds=5), None),
    (NOW + timedelta(minutes=1), None),  # the browser's clock runs ahead: no judgement
])
def test_minimum_fill_time(rendered, reason):
    definition = form(min_fill_seconds=3)
    for stamp in (str(int(rendered.timestamp() * 1000)), str(rendered.timestamp()), rendered.isoformat()):
        submission = domain.map_submission(definition, {"_rendered_at": stamp})
        assert domain.spam_reason(definition, submission, NOW) == reason, stamp


def test_fill_time_is_not_checked_without_a_minimum_or_a_stamp():
    assert domain.spam_reason(form(), domain.map_submission(form(), {"_rendered_at": "0"}), NOW) is None
    definition = form(min_fill_seconds=3)
    assert domain.spam_reason(definition, domain.map_submission(definition, {}), NOW) is None
    garbage = domain.map_submission(definition, {"_rendered_at": "soon"})
    assert domain.spam_reason(definition, garbage, NOW) == "unreadable_render_time"


@pytest.mark.parametrize("value", ["nan", "-5", "1e400", "9" * 30, "2026-13-01"])
def test_unreadable_render_times(value):
    assert domain.parse_rendered_at(value) is None


def test_page_url_fills_landing_page_and_campaign_without_overriding_fields():
    base = domain.map_submission(form(), {"utm_source": "explicit"}).attribution
    filled = domain.with_page_attribution(base, "https://x.example/p?utm_source=q&utm_campaign=c&msclkid=m")
    assert filled.utm_source == "explicit"
    assert filled.utm_campaign == "c"
    assert filled.msclkid == "m"
    assert filled.landing_page == "https://x.example/p?utm_source=q&utm_campaign=c&msclkid=m"
    assert domain.with_page_attribution(base, None) == base


@pytest.mark.parametrize(("allowed", "origin", "ok"), [
    (["*"], "https://anything.example", True),
    (["https://www.example.com"], "https://www.example.com", True),
    (["https://www.example.com"], "https://WWW.example.com:443", True),
    (["https://www.example.com"], "http://www.example.com", False),
    (["https://www.example.com"], "https://www.example.com.evil.io", False),
    (["https://*.example.com"], "https://shop.example.com", True),
    (["https://*.example.com"], "https://example.com.evil.io", False),
    (["https://*.example.com"], "http://shop.example.com", False),
    ([], "https://www.example.com", False),
    (["https://www.example.com"], "null", False),
    (["null"], "null", True),
    (["http://localhost:3000"], "http://localhost:3000", True),
    (["http://localhost:3000"], "http://localhost:3001", False),
    (["https://www.example.com"], "::not a url::", False),
])
def test_origin_matching(allowed, origin, ok):
    assert domain.origin_allowed(allowed, origin) is ok


def test_redirects_keep_the_target_query():
    assert domain.success_redirect("https://x.example/ok?a=1", "L1") == "https://x.example/ok?a=1&lead_id=L1"
    from leadflow_kit.errors import FieldError

    errors = [FieldError(field="email", code="required", message="m"),
              FieldError(field="email", code="invalid_email", message="m"),
              FieldError(field="company", code="too_long", message="m")]
    assert domain.error_redirect("https://x.example/ko", "f", errors) == (
        "https://x.example/ko?form=f&error.email=required&error.company=too_long")
