"""Request and response bodies of capture's HTTP API (FormCreate / FormUpdate / FormPublic, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow_capture import domain
from leadflow_contracts.activities import (
    ACTIVITY_TYPES,
    INTERNAL_ACTIVITY_TYPES,
    is_known_activity_type,
    unknown_activity_type_message,
)

FORM_EXAMPLE: dict[str, Any] = {
    "key": "demo-request",
    "name": "Demo request (website)",
    "field_mapping": {"your-email": "email", "company_name": "company", "how_did_you_hear": "heard_from"},
    "required_fields": ["email", "company"],
    "allowed_origins": ["https://www.example.com", "https://*.example.com"],
    "success_url": "https://www.example.com/thanks",
    "error_url": "https://www.example.com/demo?failed=1",
    "consent_required": True,
    "consent_text": "I agree to be contacted about LeadFlow products.",
    "consent_version": "2026-01",
    "honeypot_field": "_hp",
    "min_fill_seconds": 3,
}


def _check_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("https://", "http://")) or len(value) > 2000:
        raise ValueError("must be an http(s) URL of at most 2000 characters")
    return value


def _check_origins(value: list[str]) -> list[str]:
    for entry in value:
        if not domain.valid_origin_entry(entry.replace("*.", "", 1)):
            raise ValueError(f"{entry!r} is not an origin like https://www.example.com")
    return value


class _FormFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    field_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Posted field name -> canonical lead field (email, first_name, company, utm_source, ...); "
        "names that are not canonical fields are kept as custom fields under the mapped name",
    )
    required_fields: list[str] = Field(default_factory=lambda: ["email"], description="Canonical names")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins that may post from a browser (CORS): '*', 'https://site.com' or 'https://*.site.com'. "
        "Requests without an Origin header (server to server) are always allowed.",
    )
    success_url: str | None = Field(default=None, description="Browser posts are redirected here with ?lead_id=")
    error_url: str | None = Field(default=None, description="Browser posts with invalid fields: ?error.<field>=<code>")
    consent_required: bool = False
    consent_text: str | None = Field(default=None, max_length=5000)
    consent_version: str | None = Field(default=None, max_length=64)
    honeypot_field: str = Field(default="_hp", min_length=1, max_length=100,
                                description="A field hidden from people; a fill that sets it is spam")
    min_fill_seconds: float = Field(default=0, ge=0, le=3600,
                                    description="Fills sent sooner than this after `_rendered_at` are spam")

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return _check_origins(value)

    @field_validator("success_url", "error_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _check_url(value)

    @field_validator("field_mapping")
    @classmethod
    def _mapping(cls, value: dict[str, str]) -> dict[str, str]:
        for posted, canonical in value.items():
            if not posted or not canonical or len(posted) > 100 or len(canonical) > 100:
                raise ValueError("field names must have 1-100 characters")
        return value

    @field_validator("required_fields")
    @classmethod
    def _required(cls, value: list[str]) -> list[str]:
        if any(not name or len(name) > 100 for name in value):
            raise ValueError("field names must have 1-100 characters")
        return list(dict.fromkeys(value))


class FormCreate(_FormFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [FORM_EXAMPLE]})

    key: str = Field(pattern=domain.FORM_KEY_PATTERN, description="Used in the submission URL")

    @model_validator(mode="after")
    def _consent(self) -> FormCreate:
        if self.consent_required and not (self.consent_text and self.consent_version):
            raise ValueError("a form that requires consent needs consent_text and consent_version")
        return self


class FormUpdate(BaseModel):
    """Only the fields sent change; `status` archives or restores the form."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"success_url": "https://www.example.com/thank-you"},
                                        {"status": "archived"}]},
    )

    name: str | None = Field(default=None, min_length=1, max_length=255)
    field_mapping: dict[str, str] | None = None
    required_fields: list[str] | None = None
    allowed_origins: list[str] | None = None
    success_url: str | None = None
    error_url: str | None = None
    consent_required: bool | None = None
    consent_text: str | None = Field(default=None, max_length=5000)
    consent_version: str | None = Field(default=None, max_length=64)
    honeypot_field: str | None = Field(default=None, min_length=1, max_length=100)
    min_fill_seconds: float | None = Field(default=None, ge=0, le=3600)
    status: Literal["active", "archived"] | None = None

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_origins(value)

    @field_validator("success_url", "error_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _check_url(value)


class FormPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **FORM_EXAMPLE, "status": "active", "created_at": "2026-11-23T09:00:00Z",
        "updated_at": "2026-11-23T09:00:00Z", "archived_at": None,
        "submission_url": "/v1/forms/demo-request/submissions", "embed_url": "/v1/forms/demo-request/embed.js",
    }]})

    key: str
    name: str
    field_mapping: dict[str, str]
    required_fields: list[str]
    allowed_origins: list[str]
    success_url: str | None
    error_url: str | None
    consent_required: bool
    consent_text: str | None
    consent_version: str | None
    honeypot_field: str
    min_fill_seconds: float
    status: Literal["active", "archived"]
    created_at: datetime
    updated_at: datetime
    # A default, so that the document does not call it required: FastAPI drops nulls from examples.
    archived_at: datetime | None = Field(default=None, description="When it was archived; null while active")
    submission_url: str
    embed_url: str

    @classmethod
    def of(cls, stored: domain.StoredForm) -> FormPublic:
        form = stored.definition
        return cls(
            key=form.key, name=form.name, field_mapping=form.field_mapping, required_fields=list(form.required_fields),
            allowed_origins=list(form.allowed_origins), success_url=form.success_url, error_url=form.error_url,
            consent_required=form.consent_required, consent_text=form.consent_text,
            consent_version=form.consent_version, honeypot_field=form.honeypot_field,
            min_fill_seconds=form.min_fill_seconds, status="archived" if form.archived_at else "active",
            created_at=stored.created_at, updated_at=stored.updated_at, archived_at=form.archived_at,
            submission_url=f"/v1/forms/{form.key}/submissions", embed_url=f"/v1/forms/{form.key}/embed.js",
        )


class SubmissionAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4"}]})

    lead_id: str


ACTIVITY_EXAMPLE: dict[str, Any] = {
    "type": "pricing_page_view",
    "visitor_id": "v-1f2e3d4c",
    "page_url": "https://www.example.com/pricing",
    "occurred_at": "2026-11-23T09:30:00Z",
    "properties": {"plan": "enterprise"},
}


class ActivityIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ACTIVITY_EXAMPLE]})

    type: str = Field(
        pattern=r"^[a-z][a-z0-9_.:-]{0,63}$",
        description="One of " + ", ".join(t for t in ACTIVITY_TYPES if t not in INTERNAL_ACTIVITY_TYPES)
        + ", or custom.<name> (lowercase, 64 characters in all)",
    )
    activity_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                                    description="Your id for this event; a retry with the same id is recorded once")
    lead_id: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = Field(default=None, max_length=254, pattern=domain.EMAIL_PATTERN.pattern)
    visitor_id: str | None = Field(default=None, min_length=1, max_length=128)
    page_url: str | None = Field(default=None, max_length=2000)
    occurred_at: datetime | None = Field(default=None, description="Defaults to the time capture received it")
    properties: dict[str, str] = Field(default_factory=dict, max_length=50)

    @field_validator("type")
    @classmethod
    def _in_vocabulary(cls, value: str) -> str:
        if not is_known_activity_type(value) or value in INTERNAL_ACTIVITY_TYPES:
            raise ValueError(unknown_activity_type_message(value))
        return value

    @model_validator(mode="after")
    def _identified(self) -> ActivityIn:
        if not (self.lead_id or self.email or self.visitor_id):
            raise ValueError("an activity needs a lead_id, an email or a visitor_id")
        for name, value in self.properties.items():
            if len(name) > 100 or len(value) > 1000:
                raise ValueError("property names may have 100 characters and values 1000")
        return self


class ActivityBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"activities": [
        ACTIVITY_EXAMPLE,
        {"type": "content_download", "email": "ada@example.com", "properties": {"asset": "whitepaper-2026"}},
    ]}]})

    activities: list[ActivityIn] = Field(min_length=1, max_length=100)


class ActivityAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"activity_id": "0d4c8a52-6f0e-4c53-a9b5-3c1b2f0e9a11"}]})

    activity_id: str


class ActivitiesAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"activity_ids": ["a1", "a2"]}]})

    activity_ids: list[str]
