"""Who a lead is, as its events tell it: the email, name and company its search finds it by."""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email

from leadflow_contracts import LeadCaptured, LeadContact, LeadEnriched, LeadProfile


def normalized_email(raw: str | None) -> str | None:
    """The address as enrichment normalizes it (lowercase mailbox at its ASCII domain); None when it is no
    address. Searching by the address a person typed finds the lead enrichment stored."""
    if raw is None or not raw.strip():
        return None
    try:
        valid = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{valid.local_part.lower()}@{valid.ascii_domain.lower()}"


def identity_changes(data: LeadCaptured | LeadEnriched, known_email: str | None) -> dict[str, Any]:
    """The lead's email, name and company from a fill (as typed) or from enrichment (normalized, which wins
    over the fill's where it knows a value)."""
    if isinstance(data, LeadCaptured):
        return _non_empty(email=normalized_email(data.contact.email), full_name=_name(data.contact),
                          company=data.contact.company)
    profile: LeadProfile = data.profile
    changes = _non_empty(email=profile.email, full_name=_name(profile) or _name(data.original),
                         company=profile.company or data.original.company)
    if "email" not in changes and known_email is None:
        changes.update(_non_empty(email=normalized_email(data.original.email)))
    return changes


def _name(person: LeadContact | LeadProfile) -> str | None:
    parts = [p.strip() for p in (person.first_name, person.last_name) if p and p.strip()]
    if parts:
        return " ".join(parts)
    full = person.full_name if isinstance(person, LeadContact) else None
    return full.strip() if full and full.strip() else None


def _non_empty(**values: str | None) -> dict[str, Any]:
    return {name: value.strip()[:_LIMITS[name]] for name, value in values.items() if value and value.strip()}


# The columns' widths: a longer value is cut rather than failing the lead's whole batch.
_LIMITS = {"email": 320, "full_name": 255, "company": 255}
