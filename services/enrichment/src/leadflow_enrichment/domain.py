"""Enrichment's rules: from what a person typed to a normalized profile with a quality score. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from leadflow_contracts import AccountMatch, DataQuality, LeadCaptured, LeadContact, LeadProfile
from leadflow_enrichment import normalize
from leadflow_enrichment.titles import classify_title


@dataclass(frozen=True)
class Firmographics:
    """Company facts from a source other than the form: the account directory or a provider."""

    name: str | None = None
    industry: str | None = None
    employee_count: int | None = None
    annual_revenue: float | None = None
    country: str | None = None

    @property
    def complete(self) -> bool:
        return self.industry is not None and self.employee_count is not None


@dataclass(frozen=True)
class AccountRecord:
    """An account of the directory, as matching sees it."""

    id: str
    name: str
    domains: tuple[str, ...]
    industry: str | None
    employee_count: int | None
    annual_revenue: float | None
    country: str | None
    owner_rep_id: str | None
    tier: str | None

    def match(self, method: str, confidence: float, domain: str | None) -> AccountMatch:
        return AccountMatch(
            account_id=self.id, name=self.name, domain=domain or (self.domains[0] if self.domains else None),
            method=method,
            confidence=round(confidence, 4), owner_rep_id=self.owner_rep_id, tier=self.tier,
        )

    def firmographics(self) -> Firmographics:
        return Firmographics(self.name, self.industry, self.employee_count, self.annual_revenue, self.country)


@dataclass(frozen=True)
class KnownLead:
    """The lead a repeat fill of the same email merges into, as stored."""

    id: str
    original: LeadContact
    custom_fields: dict[str, str]


@dataclass(frozen=True)
class Normalized:
    profile: LeadProfile
    # What could not be normalized, for the quality score (the original stays on the lead).
    problems: tuple[str, ...] = field(default_factory=tuple)


def account_name_key(name: str) -> str:
    """An account's name as fuzzy matching compares it."""
    return normalize.company_key(name) or name.lower()


def email_key(raw: str | None) -> str | None:
    """The identity a repeat fill is recognized by; None when the address is missing or invalid."""
    return normalize.normalize_email(raw).email


def fill_blanks(existing: LeadContact, newer: LeadContact) -> LeadContact:
    """The person's record after another fill: what they told us before stays, blanks take the new value."""
    merged = existing.model_dump()
    for name, value in newer.model_dump().items():
        if value is not None and (merged.get(name) is None or not str(merged[name]).strip()):
            merged[name] = value
    return LeadContact.model_validate(merged)


def fill_blank_custom_fields(existing: dict[str, str], newer: dict[str, str]) -> dict[str, str]:
    """Custom fields after another fill: as for the contact, a repeat fill (anyone may post one with
    a known email) adds what was missing and overwrites nothing an earlier fill set."""
    merged = dict(existing)
    for name, value in newer.items():
        if not merged.get(name, "").strip():
            merged[name] = value
    return merged


def merge_fill(known: KnownLead | None, captured: LeadCaptured) -> tuple[LeadContact, dict[str, str]]:
    """The contact and custom fields a fill leaves its lead with: its own for a new person; for a repeat
    fill, what was stored with the blanks filled from this fill."""
    if known is None:
        return captured.contact, captured.custom_fields
    return (fill_blanks(known.original, captured.contact),
            fill_blank_custom_fields(known.custom_fields, captured.custom_fields))


def normalize_contact(contact: LeadContact, default_phone_region: str | None = None,
                      email: normalize.EmailResult | None = None) -> Normalized:
    """``email``: ``normalize.normalize_email(contact.email)`` when the caller has it already."""
    problems: list[str] = []
    if email is None:
        email = normalize.normalize_email(contact.email)
    if contact.email and email.email_type == "invalid":
        problems.append("invalid_email")

    country = normalize.normalize_country(contact.country)
    if contact.country and country is None:
        problems.append("unrecognized_country")

    phone = normalize.normalize_phone(contact.phone, country or default_phone_region)
    if contact.phone and phone is None:
        problems.append("invalid_phone")

    name = normalize.normalize_name(contact.first_name, contact.last_name, contact.full_name)
    title = classify_title(contact.job_title)
    website_domain = normalize.registrable_domain(contact.website)
    if contact.website and website_domain is None:
        problems.append("invalid_website")
    employees = normalize.parse_number(contact.employee_count)
    revenue = normalize.parse_number(contact.annual_revenue)

    profile = LeadProfile(
        email=email.email,
        email_domain=email.domain,
        email_type=email.email_type,
        is_role_address=email.is_role_address,
        first_name=name.first_name,
        last_name=name.last_name,
        salutation=name.salutation,
        phone_e164=phone,
        company=normalize.clean_company(contact.company),
        company_domain=company_domain(website_domain, email.corporate_domain),
        job_title=title.title,
        seniority=title.seniority,
        function=title.function,
        country=country,
        state=normalize.normalize_state(contact.state, country),
        city=normalize.clean(contact.city),
        industry=normalize.clean(contact.industry),
        employee_count=int(employees) if employees is not None else None,
        annual_revenue=revenue,
    )
    return Normalized(profile, tuple(problems))


def company_domain(website_domain: str | None, mailbox_domain: str | None) -> str | None:
    """The website names the company more reliably than a mailbox does, unless it is a mail service."""
    if website_domain and not normalize.is_mailbox_provider(website_domain):
        return website_domain
    return mailbox_domain


def apply_firmographics(profile: LeadProfile, facts: Firmographics | None) -> LeadProfile:
    """Directory or provider facts fill what the form left blank; what the person typed is kept."""
    if facts is None:
        return profile
    updates = {
        "company": profile.company or facts.name,
        "industry": profile.industry or facts.industry,
        "employee_count": profile.employee_count if profile.employee_count is not None else facts.employee_count,
        "annual_revenue": profile.annual_revenue if profile.annual_revenue is not None else facts.annual_revenue,
        "country": profile.country or facts.country,
    }
    return profile.model_copy(update=updates)


# Points off a perfect 100, by reason: contactability first, then the fit signals sales relies on.
QUALITY_PENALTIES: dict[str, int] = {
    "missing_email": 40,
    "invalid_email": 40,
    "disposable_email": 30,
    "free_email": 10,
    "role_address": 10,
    "missing_phone": 10,
    "invalid_phone": 10,
    "missing_name": 10,
    "missing_company": 10,
    "missing_job_title": 5,
    "missing_country": 5,
    "unrecognized_country": 5,
    "invalid_website": 3,
    "no_account_match": 5,
    "missing_firmographics": 5,
    "partial_enrichment": 5,
}


def quality(
    profile: LeadProfile,
    original: LeadContact,
    problems: tuple[str, ...],
    account: AccountMatch | None,
    partial_reasons: list[str],
) -> DataQuality:
    reasons = list(problems)
    if not original.email:
        reasons.append("missing_email")
    if profile.email_type == "disposable":
        reasons.append("disposable_email")
    elif profile.email_type == "free":
        reasons.append("free_email")
    if profile.is_role_address:
        reasons.append("role_address")
    if not original.phone:
        reasons.append("missing_phone")
    if not (profile.first_name or profile.last_name):
        reasons.append("missing_name")
    if not profile.company:
        reasons.append("missing_company")
    if not profile.job_title:
        reasons.append("missing_job_title")
    if not original.country and not profile.country:
        reasons.append("missing_country")
    if account is None:
        reasons.append("no_account_match")
    if profile.industry is None or profile.employee_count is None:
        reasons.append("missing_firmographics")
    if partial_reasons:
        reasons.append("partial_enrichment")
    reasons = list(dict.fromkeys(reasons))
    score = max(0, 100 - sum(QUALITY_PENALTIES.get(r, 0) for r in reasons))
    return DataQuality(score=score, reasons=reasons)
