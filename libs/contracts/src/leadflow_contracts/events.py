"""The data of every LeadFlow event, one versioned model per event type.

Adding an optional field keeps a type at its version; renaming, removing or retyping a field
mints a new version (``lead.captured.v2``) and the old one stays readable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from leadflow_contracts import topics
from leadflow_contracts.money import Amount, CurrencyCode
from leadflow_contracts.sla_policy import BusinessHours


class EventData(BaseModel):
    # Consumers must tolerate fields added later by a newer producer of the same version.
    model_config = ConfigDict(extra="ignore", frozen=True)

    EVENT_TYPE: ClassVar[str] = ""


LifecycleStage = Literal[
    "lead", "mql", "sal", "sql", "opportunity", "customer", "disqualified", "recycled"
]
PriorityTier = Literal["hot", "warm", "cold"]
FitGrade = Literal["A", "B", "C", "D"]
TouchType = Literal[
    "accepted", "contacted", "meeting_booked", "opportunity_created", "disqualified", "converted", "recycled",
    "closed_lost",
]
# The touches that may carry the opportunity's amount and currency.
DEAL_TOUCHES: frozenset[str] = frozenset({"opportunity_created", "converted", "closed_lost"})


class Attribution(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_term: str | None = None
    utm_content: str | None = None
    gclid: str | None = None
    fbclid: str | None = None
    msclkid: str | None = None
    referrer: str | None = None
    landing_page: str | None = None
    page_title: str | None = None


class Consent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    given: bool
    text_version: str | None = None
    text: str | None = Field(default=None, description="The consent text the person agreed to (that version's)")
    given_at: datetime | None = None
    ip: str | None = None


class LeadContact(BaseModel):
    """Canonical lead fields as the person typed them (after the form's field mapping)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None
    phone: str | None = None
    company: str | None = None
    job_title: str | None = None
    website: str | None = None
    country: str | None = None
    state: str | None = None
    city: str | None = None
    industry: str | None = None
    employee_count: str | None = None
    annual_revenue: str | None = None
    message: str | None = None


class LeadProfile(BaseModel):
    """Normalized lead fields, as enrichment made them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    email: str | None = None
    email_domain: str | None = None
    email_type: Literal["corporate", "free", "disposable", "invalid"] | None = None
    is_role_address: bool = False
    first_name: str | None = None
    last_name: str | None = None
    salutation: str | None = None
    phone_e164: str | None = None
    company: str | None = None
    company_domain: str | None = None
    job_title: str | None = None
    seniority: str | None = None
    function: str | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2")
    state: str | None = None
    city: str | None = None
    industry: str | None = None
    employee_count: int | None = None
    annual_revenue: float | None = None


class AccountMatch(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    account_id: str
    name: str
    domain: str | None = None
    method: Literal["domain", "fuzzy_name"]
    confidence: float = Field(ge=0, le=1)
    owner_rep_id: str | None = None
    tier: str | None = None


class DataQuality(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    score: int = Field(ge=0, le=100)
    reasons: list[str] = Field(default_factory=list)


class ScoreLine(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    rule_id: str
    category: Literal["fit", "behavior", "negative", "decay"]
    points: float
    reason: str


class RoutedOwner(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    rep_id: str
    name: str | None = None
    email: str | None = None
    team_id: str | None = None


class LeadCaptured(EventData):
    EVENT_TYPE: ClassVar[str] = "lead.captured.v1"

    lead_id: str
    form_key: str
    submitted_at: datetime
    contact: LeadContact
    custom_fields: dict[str, str] = Field(default_factory=dict)
    attribution: Attribution = Field(default_factory=Attribution)
    consent: Consent | None = None
    visitor_id: str | None = None


class LeadEnriched(EventData):
    EVENT_TYPE: ClassVar[str] = "lead.enriched.v1"

    lead_id: str = Field(description="The canonical lead; the existing lead when this fill was a duplicate")
    captured_lead_id: str = Field(description="The lead id capture gave this form fill")
    duplicate_of: str | None = None
    form_key: str
    profile: LeadProfile
    original: LeadContact
    account: AccountMatch | None = None
    quality: DataQuality
    partial: bool = False
    partial_reasons: list[str] = Field(default_factory=list)
    attribution: Attribution = Field(default_factory=Attribution)
    custom_fields: dict[str, str] = Field(default_factory=dict)
    visitor_id: str | None = None
    consent: Consent | None = Field(default=None, description="As capture recorded it with the fill")


class LeadScored(EventData):
    EVENT_TYPE: ClassVar[str] = "lead.scored.v1"

    lead_id: str
    score: float
    fit_grade: FitGrade
    engagement_level: int = Field(ge=1, le=4)
    tier: PriorityTier
    is_mql: bool
    model_version: str
    breakdown: list[ScoreLine] = Field(default_factory=list)
    lifecycle_stage: LifecycleStage
    previous_stage: LifecycleStage | None = None
    stage_changed_at: datetime | None = None
    trigger: Literal["enriched", "activity", "decay", "touched", "model_change"] = "enriched"
    duplicate_of: str | None = None
    form_key: str | None = None
    profile: LeadProfile = Field(default_factory=LeadProfile)
    account: AccountMatch | None = None
    quality: DataQuality | None = None
    attribution: Attribution = Field(default_factory=Attribution)
    # Carried along from the lead's form fill, so routing hands the CRM the whole record.
    consent: Consent | None = None
    custom_fields: dict[str, str] = Field(default_factory=dict)
    message: str | None = Field(default=None, description="The message the person typed in the form")


class LeadRouted(EventData):
    EVENT_TYPE: ClassVar[str] = "lead.routed.v1"

    lead_id: str
    assignment_id: str
    owner: RoutedOwner | None = None
    queue: str | None = Field(default=None,
                              description="Set when the lead waits in a queue: a fallback queue, or 'nurture'")
    team_id: str | None = Field(default=None, description="The lead's team: its owner's, or for a lead waiting "
                                "in a queue the team whose fallback queue it is (its SLA clock follows that "
                                "team's policy)")
    reason: str
    rule_id: str | None = None
    strategy: str | None = None
    tier: PriorityTier | None = None
    score: float | None = None
    reroute: bool = False
    reroute_reason: str | None = None
    previous_owner_rep_id: str | None = None
    escalated: bool = False
    kept_owner: bool = Field(
        default=False,
        description="A repeat fill (or duplicate) of an already-routed lead: the owner was kept, not chosen again",
    )
    form_key: str | None = None
    attribution: Attribution = Field(default_factory=Attribution)
    nurture: bool = Field(
        default=False,
        description="Held in marketing's nurture (owner None, queue 'nurture'): not handed to sales, no SLA clock",
    )


class LeadActivity(EventData):
    EVENT_TYPE: ClassVar[str] = "lead.activity.v1"

    activity_id: str
    activity_type: str = Field(description="page_view, content_download, webinar_registered, ... or custom")
    occurred_at: datetime
    lead_id: str | None = None
    email: str | None = None
    visitor_id: str | None = None
    page_url: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)


class LeadTouched(EventData):
    EVENT_TYPE: ClassVar[str] = "lead.touched.v1"

    lead_id: str
    touch_id: str
    touch_type: TouchType
    occurred_at: datetime
    rep_id: str | None = None
    reason: str | None = None
    integration: str | None = None
    owner_mismatch: bool = False
    # The opportunity's value, on opportunity_created, converted and closed_lost when the CRM sends it.
    amount: Amount | None = None
    currency: CurrencyCode | None = None


class LeadSla(EventData):
    EVENT_TYPE: ClassVar[str] = "lead.sla.v1"

    lead_id: str
    clock_id: str
    kind: Literal["warning", "breach"]
    tier: PriorityTier
    owner_rep_id: str | None = None
    team_id: str | None = None
    started_at: datetime
    due_at: datetime
    breach_count: int = 0
    escalate: bool = False


class LeadSlaStarted(EventData):
    """A first-touch clock was opened (sla owns the policies, so this is where a lead's due time is
    known); routing hands it to the CRM as the ``lead.sla.started`` webhook."""

    EVENT_TYPE: ClassVar[str] = "lead.sla_started.v1"

    lead_id: str
    clock_id: str
    tier: PriorityTier
    owner_rep_id: str | None = None
    team_id: str | None = None
    queue: str | None = None
    started_at: datetime
    due_at: datetime
    warning_at: datetime | None = None
    target_seconds: int | None = None
    assignment_id: str | None = Field(default=None, description="The lead.routed assignment that opened it")


class LeadDelivered(EventData):
    EVENT_TYPE: ClassVar[str] = "lead.delivered.v1"

    lead_id: str
    webhook_id: str
    subscription_id: str
    event_type_delivered: str
    status: Literal["delivered", "failed", "dead"]
    attempt: int
    status_code: int | None = None
    error: str | None = None
    at: datetime


class PrivacyErasureRequested(EventData):
    """Erase a person everywhere (GDPR art. 17); every service erases its rows and answers with a completion."""

    EVENT_TYPE: ClassVar[str] = "privacy.erasure_requested.v1"

    erasure_id: str
    email: str | None = Field(default=None, description="Normalized; services find the person's rows by it")
    lead_ids: list[str] = Field(default_factory=list, description="Every lead id capture gave the person's fills")
    requested_at: datetime


class PrivacyErasureCompleted(EventData):
    """One service erased what it held about the person of an erasure request."""

    EVENT_TYPE: ClassVar[str] = "privacy.erasure_completed.v1"

    erasure_id: str
    service: str
    rows_erased: int
    completed_at: datetime


class SlaPolicyTerms(BaseModel):
    """What an SLA policy says (sla's admin API, ``/v1/admin/sla-policies``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tier: PriorityTier
    team_id: str | None = Field(default=None, description="None: the tier's default policy")
    target_seconds: int
    warning_ratio: float
    breach_limit: int
    business_hours: BusinessHours | None = None
    use_owner_hours: bool = False
    active: bool = True


class SlaPolicyChanged(EventData):
    """An SLA policy was created, changed or deleted in sla (keyed by its id on the compacted ``sla.policies``);
    sla republishes every policy at start-up. Routing keeps a replica to put a lead's due time on its
    ``lead.routed`` webhook."""

    EVENT_TYPE: ClassVar[str] = "sla.policy_changed.v1"

    policy_id: str
    policy: SlaPolicyTerms | None = Field(description="None: the policy was deleted")
    changed_at: datetime


class SlaCalendarChanged(EventData):
    """A rep's own business hours were set or removed in sla (keyed ``rep:<rep id>`` on ``sla.policies``)."""

    EVENT_TYPE: ClassVar[str] = "sla.calendar_changed.v1"

    rep_id: str
    business_hours: BusinessHours | None = Field(description="None: the rep's calendar was removed")
    changed_at: datetime


EVENT_MODELS: dict[str, type[EventData]] = {
    "lead.captured.v1": LeadCaptured,
    "lead.enriched.v1": LeadEnriched,
    "lead.scored.v1": LeadScored,
    "lead.routed.v1": LeadRouted,
    "lead.activity.v1": LeadActivity,
    "lead.touched.v1": LeadTouched,
    "lead.sla.v1": LeadSla,
    "lead.sla_started.v1": LeadSlaStarted,
    "lead.delivered.v1": LeadDelivered,
    "privacy.erasure_requested.v1": PrivacyErasureRequested,
    "privacy.erasure_completed.v1": PrivacyErasureCompleted,
    "sla.policy_changed.v1": SlaPolicyChanged,
    "sla.calendar_changed.v1": SlaCalendarChanged,
}

TOPIC_OF: dict[str, str] = {
    "lead.captured.v1": topics.CAPTURED,
    "lead.enriched.v1": topics.ENRICHED,
    "lead.scored.v1": topics.SCORED,
    "lead.routed.v1": topics.ROUTED,
    "lead.activity.v1": topics.ACTIVITY,
    "lead.touched.v1": topics.TOUCHED,
    "lead.sla.v1": topics.SLA,
    "lead.sla_started.v1": topics.SLA,
    "lead.delivered.v1": topics.DELIVERED,
    "privacy.erasure_requested.v1": topics.PRIVACY,
    "privacy.erasure_completed.v1": topics.PRIVACY,
    "sla.policy_changed.v1": topics.SLA_POLICIES,
    "sla.calendar_changed.v1": topics.SLA_POLICIES,
}


def model_for(event_type: str) -> type[EventData]:
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


class UnknownEventType(ValueError):
    pass


def json_schema_of(event_type: str) -> dict[str, Any]:
    return model_for(event_type).model_json_schema()
