"""Form fills as plain data: mapping posted fields onto the canonical lead, and validating them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from leadflow_contracts import Attribution, LeadCaptured, LeadContact
from leadflow_kit.errors import FieldError

CONTACT_FIELDS = frozenset(LeadContact.model_fields)
ATTRIBUTION_FIELDS = frozenset(Attribution.model_fields)
MAX_FIELD_LENGTH = 2000


@dataclass(frozen=True)
class FormDefinition:
    key: str
    name: str
    field_mapping: dict[str, str] = field(default_factory=dict)
    required_fields: tuple[str, ...] = ("email",)
    active: bool = True


@dataclass(frozen=True)
class Submission:
    contact: LeadContact
    custom_fields: dict[str, str]
    attribution: Attribution


def map_submission(form: FormDefinition, posted: dict[str, str]) -> Submission:
    contact: dict[str, str] = {}
    custom: dict[str, str] = {}
    attribution: dict[str, str] = {}
    for name, value in posted.items():
        canonical = form.field_mapping.get(name, name)
        value = value.strip()
        if not value:
            continue
        if canonical in CONTACT_FIELDS:
            contact[canonical] = value
        elif canonical in ATTRIBUTION_FIELDS:
            attribution[canonical] = value
        else:
            custom[canonical] = value
    return Submission(LeadContact(**contact), custom, Attribution(**attribution))


def validate_submission(form: FormDefinition, submission: Submission) -> list[FieldError]:
    errors: list[FieldError] = []
    contact = submission.contact.model_dump()
    for name in form.required_fields:
        if not contact.get(name) and not submission.custom_fields.get(name):
            errors.append(FieldError(field=name, code="required", message=f"{name} is required"))
    email = contact.get("email")
    if email and ("@" not in email or email.startswith("@") or email.endswith("@")):
        errors.append(FieldError(field="email", code="invalid_email", message="email must look like name@domain"))
    for name, value in {**contact, **submission.custom_fields}.items():
        if isinstance(value, str) and len(value) > MAX_FIELD_LENGTH:
            message = f"{name} exceeds {MAX_FIELD_LENGTH} characters"
            errors.append(FieldError(field=name, code="too_long", message=message))
    return errors


def lead_captured(lead_id: str, form: FormDefinition, submission: Submission, at: datetime) -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        form_key=form.key,
        submitted_at=at,
        contact=submission.contact,
        custom_fields=submission.custom_fields,
        attribution=submission.attribution,
    )
