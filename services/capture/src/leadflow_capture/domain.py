"""Form fills as plain data: form definitions, mapping posted fields onto the canonical lead,
validation, spam rules, attribution and consent. No I/O here."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from leadflow_contracts import Attribution, Consent, LeadActivity, LeadCaptured, LeadContact
from leadflow_kit.errors import FieldError

CONTACT_FIELDS = frozenset(LeadContact.model_fields)
ATTRIBUTION_FIELDS = frozenset(Attribution.model_fields)
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_ID_FIELDS = ("gclid", "fbclid", "msclkid")
# Names that web pages and tag managers commonly use for the same attribution facts.
ATTRIBUTION_ALIASES = {
    "landing_page_url": "landing_page",
    "page_url": "landing_page",
    "page_uri": "landing_page",
    "document_referrer": "referrer",
    "referer": "referrer",
}
# Fields starting with "_" steer capture (honeypot, render time, ...) and are never kept on the lead.
CONTROL_PREFIX = "_"
RENDERED_AT_FIELD = "_rendered_at"
VISITOR_ID_FIELDS = ("visitor_id", "_visitor_id")
CONSENT_FIELD = "consent"
TRUTHY = frozenset({"1", "true", "yes", "on", "y", "checked", "accepted", "agree", "granted"})
# Free-text fields people legitimately write at length.
LONG_TEXT_FIELDS = frozenset({"message"})
FORM_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,99}$"
# name@domain.tld with no space or bracket anywhere and a dot inside the domain (not first, not last).
# The domain's first character may be anything allowed, then no dot up to the first dot after it:
# each character can be read one way only, so the match is linear (an earlier "[^@]+\.[^@]+" was not).
_EMAIL_CHAR = r"[^@\s<>(),;:\"\[\]]"
_EMAIL_CHAR_NOT_DOT = r"[^@\s<>(),;:\"\[\].]"
EMAIL_PATTERN = re.compile(rf"^{_EMAIL_CHAR}+@{_EMAIL_CHAR}{_EMAIL_CHAR_NOT_DOT}*\.{_EMAIL_CHAR}+$")
MAX_EMAIL_LENGTH = 254
# Control characters other than tab, newline and carriage return never come from a keyboard;
# NUL cannot even be stored in PostgreSQL text.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A browser clock may run ahead of ours; a render time this far in the future proves nothing.
_CLOCK_SKEW = timedelta(minutes=5)


def has_control_characters(value: str) -> bool:
    return _CONTROL_CHARS.search(value) is not None


@dataclass(frozen=True)
class Limits:
    max_fields: int = 100
    max_field_name_length: int = 100
    max_field_length: int = 2000
    max_message_length: int = 10000


@dataclass(frozen=True)
class FormDefinition:
    key: str
    name: str
    field_mapping: dict[str, str] = field(default_factory=dict)
    required_fields: tuple[str, ...] = ("email",)
    allowed_origins: tuple[str, ...] = ()
    success_url: str | None = None
    error_url: str | None = None
    consent_required: bool = False
    consent_text: str | None = None
    consent_version: str | None = None
    honeypot_field: str = "_hp"
    min_fill_seconds: float = 0.0
    archived_at: datetime | None = None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    def posted_name_of(self, canonical: str) -> str:
        """The field name the web form uses for a canonical field (errors name what the page has)."""
        for posted, target in self.field_mapping.items():
            if target == canonical:
                return posted
        return canonical


@dataclass(frozen=True)
class StoredForm:
    """A form as the admin API shows it: its definition and when it was made and last changed."""

    definition: FormDefinition
    created_at: datetime
    updated_at: datetime


def consent_complete(current: FormDefinition, changes: Mapping[str, Any]) -> bool:
    """Whether the form, with ``changes`` applied, has the text and version of any consent it requires."""
    required = changes.get("consent_required", current.consent_required)
    text = changes.get("consent_text", current.consent_text)
    version = changes.get("consent_version", current.consent_version)
    return not required or bool(text and version)


@dataclass(frozen=True)
class Submission:
    contact: LeadContact
    custom_fields: dict[str, str]
    attribution: Attribution
    consent_given: bool = False
    visitor_id: str | None = None
    honeypot: str = ""
    rendered_at: str | None = None
    # canonical field -> the name it was posted under, to report errors against the page's names
    posted_names: dict[str, str] = field(default_factory=dict)


def merge_fields(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated names (checkbox groups, multi-selects) become one comma-separated value."""
    merged: dict[str, list[str]] = {}
    for name, value in pairs:
        merged.setdefault(name, []).append(value)
    return {name: ", ".join(v for v in values if v) if len(values) > 1 else values[0]
            for name, values in merged.items()}


def map_submission(form: FormDefinition, posted: Mapping[str, str]) -> Submission:
    contact: dict[str, str] = {}
    custom: dict[str, str] = {}
    attribution: dict[str, str] = {}
    posted_names: dict[str, str] = {}
    consent_given = False
    visitor_id: str | None = None
    honeypot = ""
    rendered_at: str | None = None
    for name, raw in posted.items():
        value = raw.strip()
        if name == form.honeypot_field:
            honeypot = value
            continue
        if name == RENDERED_AT_FIELD:
            rendered_at = value or None
            continue
        if name in VISITOR_ID_FIELDS:
            visitor_id = value or None
            continue
        canonical = form.field_mapping.get(name, name)
        canonical = ATTRIBUTION_ALIASES.get(canonical, canonical)
        if canonical == CONSENT_FIELD:
            consent_given = value.lower() in TRUTHY
            continue
        if name.startswith(CONTROL_PREFIX) and name not in form.field_mapping:
            continue
        if not value:
            continue
        posted_names[canonical] = name
        if canonical in CONTACT_FIELDS:
            contact[canonical] = value
        elif canonical in ATTRIBUTION_FIELDS:
            attribution[canonical] = value
        else:
            custom[canonical] = value
    return Submission(
        contact=LeadContact(**contact),
        custom_fields=custom,
        attribution=Attribution(**attribution),
        consent_given=consent_given,
        visitor_id=visitor_id,
        honeypot=honeypot,
        rendered_at=rendered_at,
        posted_names=posted_names,
    )


def with_page_attribution(attribution: Attribution, page_url: str | None) -> Attribution:
    """Fill what the page's own URL tells: the landing page and the UTM / click ids in its query.

    A plain HTML form has no script to copy the query string into hidden fields, but the
    browser's Referer on the post is the page the form sits on.
    """
    if not page_url:
        return attribution
    values = attribution.model_dump()
    if not values.get("landing_page"):
        values["landing_page"] = page_url[:2000]
    landing = values["landing_page"]
    try:
        query = dict(parse_qsl(urlsplit(landing).query))
    except ValueError:
        query = {}
    for name in (*UTM_FIELDS, *CLICK_ID_FIELDS):
        if not values.get(name) and query.get(name):
            values[name] = query[name][:500]
    return Attribution(**values)


def field_count_errors(posted: Mapping[str, str], limits: Limits) -> list[FieldError]:
    errors: list[FieldError] = []
    if len(posted) > limits.max_fields:
        errors.append(FieldError(field="body", code="too_many_fields",
                                 message=f"at most {limits.max_fields} fields may be posted, got {len(posted)}"))
    for name in posted:
        if len(name) > limits.max_field_name_length:
            errors.append(FieldError(field=name[:40] + "…", code="field_name_too_long",
                                     message=f"field names may have at most {limits.max_field_name_length} characters"))
        elif not name:
            errors.append(FieldError(field="body", code="empty_field_name", message="a field has an empty name"))
        elif _CONTROL_CHARS.search(name):
            errors.append(FieldError(field=name.encode("unicode_escape").decode()[:100], code="invalid_characters",
                                     message="field names may not contain control characters"))
    return errors


def validate_submission(form: FormDefinition, submission: Submission, limits: Limits | None = None) -> list[FieldError]:
    limits = limits or Limits()
    errors: list[FieldError] = []

    def named(canonical: str) -> str:
        return submission.posted_names.get(canonical) or form.posted_name_of(canonical)

    contact = submission.contact.model_dump(exclude_none=True)
    attribution = submission.attribution.model_dump(exclude_none=True)
    every = {**contact, **submission.custom_fields, **attribution}
    for name in form.required_fields:
        if not every.get(name):
            errors.append(FieldError(field=named(name), code="required", message=f"{named(name)} is required"))
    email = contact.get("email")
    if email and (len(email) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.fullmatch(email)):
        errors.append(FieldError(field=named("email"), code="invalid_email",
                                 message="email must look like name@example.com"))
    for name, value in every.items():
        limit = limits.max_message_length if name in LONG_TEXT_FIELDS else limits.max_field_length
        if len(value) > limit:
            errors.append(FieldError(field=named(name), code="too_long",
                                     message=f"{named(name)} exceeds {limit} characters"))
        elif _CONTROL_CHARS.search(value):
            errors.append(FieldError(field=named(name), code="invalid_characters",
                                     message=f"{named(name)} contains control characters"))
    if submission.visitor_id is not None and (len(submission.visitor_id) > 128
                                              or _CONTROL_CHARS.search(submission.visitor_id)):
        errors.append(FieldError(field="visitor_id", code="invalid",
                                 message="visitor_id must be 1-128 printable characters"))
    if form.consent_required and not submission.consent_given:
        errors.append(FieldError(field=form.posted_name_of(CONSENT_FIELD), code="consent_required",
                                 message=form.consent_text or "consent is required to submit this form"))
    return errors


def parse_rendered_at(value: str) -> datetime | None:
    """Epoch seconds or milliseconds (as JavaScript's Date.now() gives) or ISO 8601."""
    try:
        number = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if number != number or number <= 0:  # NaN or nonsense
        return None
    seconds = number / 1000 if number > 1e11 else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def spam_reason(form: FormDefinition, submission: Submission, now: datetime) -> str | None:
    """Why this fill looks like a bot's, or None. Spam is accepted silently and never forwarded."""
    if submission.honeypot:
        return "honeypot"
    if form.min_fill_seconds > 0 and submission.rendered_at is not None:
        rendered = parse_rendered_at(submission.rendered_at)
        if rendered is None:
            return "unreadable_render_time"
        elapsed = (now - rendered).total_seconds()
        # A render time ahead of our clock can be browser clock skew: do not judge it.
        if -_CLOCK_SKEW.total_seconds() <= elapsed < form.min_fill_seconds and rendered <= now:
            return "filled_too_fast"
    return None


def normalize_email(email: str | None) -> str | None:
    return email.strip().lower() if email else None


def person_key(email: str, secret: bytes) -> str:
    """An opaque, stable id for a person known only by an email: the key and subject of their events.

    Every event of one person lands on one partition, yet neither Kafka, its consumers' logs nor a
    dead letter learn the address. Keyed (HMAC) rather than a plain hash, so it cannot be reversed
    by hashing a list of guessed addresses."""
    digest = hmac.new(secret, (normalize_email(email) or "").encode(), hashlib.sha256).hexdigest()
    return f"person-{digest[:32]}"


@dataclass(frozen=True)
class NewLead:
    """A lead as it is stored: what the fill said, and where it came from."""

    id: str
    form_key: str
    contact: LeadContact
    custom_fields: dict[str, str]
    attribution: Attribution
    submitted_at: datetime
    email_normalized: str | None
    consent: Consent | None
    visitor_id: str | None
    ip: str | None
    user_agent: str | None


def new_lead(lead_id: str, form: FormDefinition, submission: Submission, now: datetime, ip: str | None,
             user_agent: str | None) -> NewLead:
    return NewLead(
        id=lead_id,
        form_key=form.key,
        contact=submission.contact,
        custom_fields=submission.custom_fields,
        attribution=submission.attribution,
        submitted_at=now,
        email_normalized=normalize_email(submission.contact.email),
        consent=consent_record(form, submission, now, ip),
        visitor_id=submission.visitor_id,
        ip=ip,
        user_agent=(user_agent or "")[:1000] or None,
    )


@dataclass(frozen=True)
class Person:
    """One person as capture knows them: their email (when known) and the leads of their fills."""

    email: str | None
    lead_ids: list[str]


def activity_key(data: LeadActivity, person_secret: bytes) -> str:
    """Kafka key of an activity: the lead when known, else the visitor, else an opaque id of the email."""
    return data.lead_id or data.visitor_id or person_key(data.email or "", person_secret)


def consent_record(form: FormDefinition, submission: Submission, now: datetime, ip: str | None) -> Consent | None:
    if not submission.consent_given:
        return None
    return Consent(given=True, text_version=form.consent_version, text=form.consent_text, given_at=now,
                   ip=ip)


def normalize_origin(origin: str) -> str:
    parts = urlsplit(origin.strip().lower())
    host = parts.hostname or ""
    port = parts.port if parts.port not in (None, 80 if parts.scheme == "http" else 443) else None
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}"


def origin_allowed(allowed: Iterable[str], origin: str) -> bool:
    """``*`` allows any origin; ``https://*.example.com`` allows its subdomains; else exact match."""
    if not origin:
        return False
    try:
        wanted = normalize_origin(origin) if origin != "null" else "null"
    except ValueError:
        return False
    for entry in allowed:
        if entry == "*" or entry == origin:
            return True
        if entry == "null" or origin == "null":
            continue
        scheme, _, host = entry.partition("://")
        if host.startswith("*."):
            w_scheme, _, w_host = wanted.partition("://")
            if w_scheme == scheme.lower() and w_host.endswith(host[1:].lower()):
                return True
        else:
            try:
                if normalize_origin(entry) == wanted:
                    return True
            except ValueError:
                continue
    return False


def valid_origin_entry(entry: str) -> bool:
    if entry in ("*", "null"):
        return True
    parts = urlsplit(entry)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )


def add_query(url: str, params: Iterable[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def success_redirect(url: str, lead_id: str) -> str:
    return add_query(url, [("lead_id", lead_id)])


def error_redirect(url: str, form_key: str, errors: Iterable[FieldError]) -> str:
    """The error page learns which fields failed and why as ``error.<field>=<code>`` parameters."""
    params = [("form", form_key)]
    seen: set[str] = set()
    for error in errors:
        if error.field not in seen:
            seen.add(error.field)
            params.append((f"error.{error.field}", error.code))
    return add_query(url, params)


def lead_captured(
    lead_id: str,
    form: FormDefinition,
    submission: Submission,
    at: datetime,
    consent: Consent | None = None,
) -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        form_key=form.key,
        submitted_at=at,
        contact=submission.contact,
        custom_fields=submission.custom_fields,
        attribution=submission.attribution,
        consent=consent,
        visitor_id=submission.visitor_id,
    )
