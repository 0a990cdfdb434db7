"""The configuration pages' pure parts: reading their text boxes, placing a service's refusal next to the
fields, the form preview's inputs and embed snippet, and which key is the console's own."""

from __future__ import annotations

import pytest

from leadflow_console.clients import ServiceError, ServiceUnavailable
from leadflow_console.edits import (
    InputProblem,
    attempt,
    is_refusal,
    mapping_lines,
    mapping_text,
    out_of_office_lines,
    out_of_office_text,
    refusal_errors,
    text_list,
    working_hours_lines,
    working_hours_text,
)
from leadflow_console.pages.api_keys import public_id
from leadflow_console.pages.forms import FormBoxes, embed_snippet, origin_allowed, preview_fields
from leadflow_console.pages.webhooks import SubscriptionBoxes

FORM = {
    "key": "demo-request", "name": "Demo request", "field_mapping": {"your-email": "email", "org": "company",
                                                                     "agree": "consent"},
    "required_fields": ["email", "company", "phone"], "allowed_origins": ["https://www.example.com"],
    "success_url": None, "error_url": None, "consent_required": True, "consent_text": "I agree to be contacted.",
    "consent_version": "2026-01", "honeypot_field": "_hp", "min_fill_seconds": 3.0,
    "embed_url": "/v1/forms/demo-request/embed.js", "submission_url": "/v1/forms/demo-request/submissions",
}


def test_lists_are_read_from_commas_or_lines_without_blanks_or_repeats():
    assert text_list("a, b\n\nc,a ,") == ["a", "b", "c"]


def test_a_field_mapping_is_one_pair_a_line_and_reads_back_the_same():
    mapping = mapping_lines("field_mapping", "your-email = email\n\n org=company ")
    assert mapping == {"your-email": "email", "org": "company"}
    assert mapping_lines("field_mapping", mapping_text(mapping)) == mapping


def test_a_mapping_line_without_an_equals_sign_names_its_line():
    with pytest.raises(InputProblem) as problem:
        mapping_lines("field_mapping", "a = b\njust-a-name")
    assert problem.value.field == "field_mapping" and problem.value.message.startswith("line 2:")


def test_working_hours_are_a_day_a_line_and_nothing_means_always_working():
    hours = working_hours_lines("working_hours", "Mon 09:00-12:00, 13:00-17:00\ntue 09:00-17:00")
    assert hours == {"mon": ["09:00-12:00", "13:00-17:00"], "tue": ["09:00-17:00"]}
    assert working_hours_lines("working_hours", working_hours_text(hours)) == hours
    assert working_hours_lines("working_hours", "  \n") is None
    with pytest.raises(InputProblem):
        working_hours_lines("working_hours", "wed")


def test_out_of_office_ranges_keep_a_reason_with_spaces():
    ranges = out_of_office_lines("out_of_office", "2026-12-24T00:00+00:00 2026-12-27T00:00+00:00 family holidays")
    assert ranges == [{"start": "2026-12-24T00:00+00:00", "end": "2026-12-27T00:00+00:00",
                       "reason": "family holidays"}]
    assert out_of_office_lines("out_of_office", out_of_office_text(ranges)) == ranges
    with pytest.raises(InputProblem):
        out_of_office_lines("out_of_office", "2026-12-24T00:00+00:00")


def test_a_refusal_goes_next_to_the_fields_it_names_and_the_rest_is_general():
    exc = ServiceError("routing", 422, "The request is invalid; see errors.", [
        {"field": "out_of_office.0.end", "code": "value_error", "message": "end must be after start"},
        {"field": "filters.tiers", "code": "too_short", "message": "at least one"},
        {"field": "mystery", "code": "x", "message": "what is this"},
    ])
    errors = refusal_errors(exc, ("out_of_office", "tiers"), aliases={"filters.tiers": "tiers"})
    assert errors.get("out_of_office") == "end must be after start"
    assert errors.get("tiers") == "at least one"
    assert errors.general == ["mystery: what is this"]


def test_a_refusal_naming_no_field_is_its_detail():
    errors = refusal_errors(ServiceError("capture", 409, "form 'x' already exists"), ("key",))
    assert not errors.by_field and errors.general == ["capture refused the request: form 'x' already exists"]


def test_only_a_4xx_the_user_can_act_on_is_a_refusal():
    assert is_refusal(ServiceError("routing", 422, "bad"))
    assert is_refusal(ServiceError("routing", 409, "in use"))
    assert not is_refusal(ServiceError("routing", 403, "the console's key lacks a scope"))
    assert not is_refusal(ServiceUnavailable("routing", "ConnectError"))


def test_the_form_editor_reads_back_what_capture_holds():
    boxes = FormBoxes.of(FORM)
    definition = boxes.definition()
    assert definition["field_mapping"] == FORM["field_mapping"]
    assert definition["required_fields"] == FORM["required_fields"]
    assert definition["allowed_origins"] == FORM["allowed_origins"]
    assert definition["min_fill_seconds"] == 3.0 and definition["success_url"] is None
    with pytest.raises(InputProblem):
        FormBoxes(name="x", min_fill_seconds="soon").definition()


def test_the_preview_has_the_contact_basics_the_required_and_the_mapped_fields_under_their_posted_names():
    fields = {item.canonical: item for item in preview_fields(FORM)}
    assert fields["email"].name == "your-email" and fields["email"].required and fields["email"].input_type == "email"
    assert fields["company"].name == "org" and fields["company"].label == "Company (org)"
    assert fields["phone"].required and not fields["first_name"].required
    assert "consent" not in fields


def test_the_embed_snippet_names_the_form_and_capture_and_asks_for_consent():
    snippet = embed_snippet(FORM, "https://capture.example.com")
    assert snippet.startswith('<form data-leadflow-form="demo-request">')
    assert '<input name="agree" type="checkbox" value="yes" required> I agree to be contacted.' in snippet
    assert snippet.endswith('<script src="https://capture.example.com/v1/forms/demo-request/embed.js" async></script>')


def test_the_preview_may_post_only_from_an_allowed_origin():
    assert not origin_allowed(FORM, "http://127.0.0.1:8000")
    assert origin_allowed({**FORM, "allowed_origins": ["http://127.0.0.1:8000"]}, "http://127.0.0.1:8000")
    assert origin_allowed({**FORM, "allowed_origins": ["*"]}, "http://127.0.0.1:8000")


def test_a_subscription_keeps_patterns_the_checkboxes_do_not_list():
    boxes = SubscriptionBoxes.of({"url": "https://crm.example.com/h", "event_types": ["lead.routed", "lead.*"],
                                  "filters": {"tiers": ["hot"], "teams": None, "forms": None}})
    assert boxes.event_types == ["lead.routed"] and boxes.other_event_types == "lead.*"
    assert boxes.body() == {"url": "https://crm.example.com/h", "description": None,
                            "event_types": ["lead.routed", "lead.*"],
                            "filters": {"tiers": ["hot"], "teams": None, "forms": None}}


def test_the_consoles_own_key_is_known_by_its_public_id():
    assert public_id("lf_9f86d081884c_Vb3kq0H4n2xW9sT1pLz8rMfQ7yJc5dGe6hA2uKoN4iE") == "9f86d081884c"
    assert public_id("dev-admin-key") is None and public_id(None) is None


async def test_a_form_post_gets_the_answer_or_the_errors_to_show_and_a_service_down_raises():
    async def answer() -> dict:
        return {"id": "rep-1"}

    async def unreadable() -> dict:
        raise InputProblem("weight", "must be a whole number")

    async def refused() -> dict:
        raise ServiceError("routing", 422, "invalid", [{"field": "timezone", "code": "v", "message": "unknown"}])

    async def down() -> dict:
        raise ServiceUnavailable("routing", "ConnectError")

    assert await attempt(answer, ("weight",)) == {"id": "rep-1"}
    assert (await attempt(unreadable, ("weight",))).get("weight") == "must be a whole number"
    assert (await attempt(refused, ("timezone",))).get("timezone") == "unknown"
    with pytest.raises(ServiceUnavailable):
        await attempt(down, ("weight",))
