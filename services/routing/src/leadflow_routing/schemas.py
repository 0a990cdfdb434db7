"""Routing's request and response bodies (the admin API's, the CRM callback's)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from leadflow_contracts.events import DEAL_TOUCHES, TouchType
from leadflow_contracts.money import Amount, CurrencyCode
from leadflow_kit.db import INT_MAX
from leadflow_routing import domain

if TYPE_CHECKING:
    from leadflow_routing.store import QueueRecord, RepRecord

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"


class CrmEvent(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"type": "meeting_booked", "rep_id": "rep-ada", "occurred_at": "2026-11-23T10:15:00Z",
         "external_id": "hs-evt-99812"},
        {"type": "disqualified", "rep_id": "rep-ada", "reason": "Student project, no budget"},
        {"type": "opportunity_created", "rep_id": "rep-ada", "amount": "12500.00", "currency": "EUR"},
    ]})

    type: TouchType
    rep_id: str | None = Field(default=None, description="The rep who acted, as the CRM knows them")
    reason: str | None = Field(default=None, max_length=2000, description="Required for disqualified")
    occurred_at: datetime | None = None
    external_id: str | None = Field(default=None, max_length=255,
                                    description="The CRM's id for this event; a repeat is acknowledged, not re-sent")
    amount: Amount | None = Field(default=None, description="The opportunity's value, on opportunity_created, "
                                  "converted and closed_lost; a decimal >= 0 (a JSON string keeps every digit)")
    currency: CurrencyCode | None = Field(default=None, validate_default=True,
                                          description="ISO 4217 code of amount, e.g. EUR")

    @model_validator(mode="after")
    def _reason_for_disqualified(self) -> CrmEvent:
        if self.type == "disqualified" and not (self.reason and self.reason.strip()):
            raise ValueError("a disqualified event needs a reason")
        return self

    @field_validator("amount")
    @classmethod
    def _amount_on_a_deal(cls, amount: Decimal | None, info: ValidationInfo) -> Decimal | None:
        touch_type = info.data.get("type")
        if amount is not None and touch_type is not None and touch_type not in DEAL_TOUCHES:
            raise ValueError(f"amount is taken only on {', '.join(sorted(DEAL_TOUCHES))}, not on {touch_type}")
        return amount

    @field_validator("currency")
    @classmethod
    def _currency_with_amount(cls, currency: str | None, info: ValidationInfo) -> str | None:
        if "amount" in info.data and (info.data["amount"] is None) != (currency is None):
            raise ValueError("amount and currency go together: send both or neither")
        return currency


class CrmEventAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "touch_id": "tch_b7e2c1d04f3a4e9b8c7d6a5b4c3d2e1f", "lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4",
        "type": "meeting_booked", "owner_rep_id": "rep-ada", "owner_mismatch": False, "duplicate": False}]})

    touch_id: str
    lead_id: str
    type: str
    owner_rep_id: str | None
    owner_mismatch: bool
    duplicate: bool


class OutOfOfficeRange(BaseModel):
    start: datetime
    end: datetime
    reason: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> OutOfOfficeRange:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def _check_timezone(value: str | None) -> str | None:
    if value is not None and not domain.valid_timezone(value):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)")
    return value


def _check_hours(value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
    domain.parse_working_hours(value)
    return None if value is None else {k[:3].lower(): v for k, v in value.items()}


class RepFields(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    team_id: str | None = None
    territories: list[str] | None = Field(default=None, examples=[["US-CA", "EMEA"]])
    weight: int | None = Field(default=None, ge=0, le=1000)
    daily_capacity: int | None = Field(default=None, ge=0, le=INT_MAX)
    max_open_leads: int | None = Field(default=None, ge=0, le=INT_MAX)
    timezone: str | None = Field(default=None, examples=["America/New_York"])
    working_hours: dict[str, list[str]] | None = Field(
        default=None, examples=[{"mon": ["09:00-17:00"], "tue": ["09:00-12:00", "13:00-17:00"]}],
        description="Local times per weekday; a day not listed is a day off; null means always working",
    )
    out_of_office: list[OutOfOfficeRange] | None = None
    active: bool | None = None

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))
    _hours = field_validator("working_hours")(classmethod(lambda cls, v: _check_hours(v)))


class RepCreate(RepFields):
    id: str | None = Field(default=None, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)


class RepUpdate(RepFields):
    pass


class RepPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "rep-ada", "name": "Ada Lovelace", "email": "ada@example.com", "team_id": "emea-sales",
        "territories": ["GB", "EMEA"], "weight": 2, "daily_capacity": 25, "max_open_leads": 40,
        "timezone": "Europe/London", "working_hours": {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"]},
        "out_of_office": [], "active": True, "open_leads": 12, "assigned_today": 3,
        "last_assigned_at": "2026-11-23T09:12:00Z", "unavailable_now": "outside_working_hours",
        "created_at": "2026-11-01T09:00:00Z", "updated_at": "2026-11-20T16:30:00Z"}]})

    id: str
    name: str
    email: str | None
    team_id: str | None
    territories: list[str]
    weight: int
    daily_capacity: int | None
    max_open_leads: int | None
    timezone: str
    working_hours: dict[str, list[str]] | None
    out_of_office: list[dict[str, Any]]
    active: bool
    open_leads: int
    assigned_today: int
    last_assigned_at: datetime | None
    unavailable_now: str | None = Field(description="Why the rep would be skipped for a hot lead now, if so")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, record: RepRecord, now: datetime) -> RepPublic:
        rep = record.rep
        return cls(
            id=rep.id, name=rep.name, email=rep.email, team_id=rep.team_id, territories=list(rep.territories),
            weight=rep.weight, daily_capacity=rep.daily_capacity, max_open_leads=rep.max_open_leads,
            timezone=rep.timezone, working_hours=record.working_hours, out_of_office=record.out_of_office,
            active=rep.active, open_leads=rep.open_leads, assigned_today=rep.assigned_on(rep.local_day(now)),
            last_assigned_at=rep.last_assigned_at, unavailable_now=domain.unavailability(rep, now, tier="hot"),
            created_at=record.created_at, updated_at=record.updated_at,
        )


class TeamFields(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    strategy: domain.Strategy | None = None
    manager_rep_id: str | None = None
    escalate_after_breaches: int | None = Field(default=None, ge=1, le=INT_MAX)
    fallback_queue: str | None = None


class TeamCreate(TeamFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "emea-sales", "name": "EMEA sales", "strategy": "round_robin", "manager_rep_id": "rep-grace",
        "escalate_after_breaches": 2, "fallback_queue": "unassigned"}]})

    id: str | None = Field(default=None, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    strategy: domain.Strategy = "round_robin"


class TeamUpdate(TeamFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{"strategy": "load_balanced",
                                                                "escalate_after_breaches": 3}]})


class TeamPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "emea-sales", "name": "EMEA sales", "strategy": "round_robin", "manager_rep_id": "rep-grace",
        "escalate_after_breaches": 2, "fallback_queue": "unassigned", "rr_last_rep_id": "rep-ada",
        "assignments": 148, "rep_ids": ["rep-ada", "rep-grace"], "created_at": "2026-11-01T09:00:00Z",
        "updated_at": "2026-11-20T16:30:00Z"}]})

    id: str
    name: str
    strategy: str
    manager_rep_id: str | None
    escalate_after_breaches: int | None
    fallback_queue: str | None
    rr_last_rep_id: str | None
    assignments: int
    rep_ids: list[str]
    created_at: datetime
    updated_at: datetime


class QueueCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "unassigned", "name": "Unassigned leads", "description": "Leads no rule or rep could take"}]})

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None


class QueueUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"description": "Worked by the SDR on duty"}]})

    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None


class QueuePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "unassigned", "name": "Unassigned leads", "description": "Leads no rule or rep could take",
        "waiting": 3, "created_at": "2026-11-01T09:00:00Z"}]})

    id: str
    name: str
    description: str | None
    waiting: int
    created_at: datetime

    @classmethod
    def from_record(cls, record: QueueRecord, waiting: int) -> QueuePublic:
        return cls(id=record.id, name=record.name, description=record.description, waiting=waiting,
                   created_at=record.created_at)


class ConditionIn(BaseModel):
    field: str = Field(min_length=1, examples=["country"])
    op: domain.Operator = "eq"
    value: Any = None


class RuleIn(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    match: domain.MatchMode = "all"
    conditions: list[ConditionIn] = Field(default_factory=list)
    team_id: str | None = None
    rep_id: str | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _one_target(self) -> RuleIn:
        if (self.team_id is None) == (self.rep_id is None):
            raise ValueError("a rule sends to exactly one of team_id or rep_id")
        return self


class RuleSetCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "rules": [
            {"id": "us-enterprise", "name": "US enterprise", "match": "all", "team_id": "us-enterprise",
             "conditions": [{"field": "country", "op": "eq", "value": "US"},
                            {"field": "employee_count", "op": "gte", "value": 1000}]},
            {"id": "emea", "name": "EMEA", "team_id": "emea-sales",
             "conditions": [{"field": "country", "op": "in", "value": ["DE", "FR", "GB"]}]},
        ],
        "fallback_queue": "unassigned", "handoff": "mql", "comment": "Enterprise split out for the US",
        "activate": True}]})

    rules: list[RuleIn]
    fallback_queue: str | None = None
    handoff: domain.Handoff = Field(
        default="mql",
        description="When a lead goes to sales: 'mql' (when it becomes an MQL; until then it waits in nurture, "
                    "with no rep and no SLA clock) or 'first_fill' (every lead, at its first form fill)",
    )
    comment: str | None = None
    activate: bool = True


class RuleSetPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "version": 4, "active": True, "fallback_queue": "unassigned", "handoff": "mql",
        "comment": "Enterprise split out for the US",
        "rules": [{"id": "us-enterprise", "name": "US enterprise", "match": "all", "team_id": "us-enterprise",
                   "rep_id": None, "enabled": True,
                   "conditions": [{"field": "country", "op": "eq", "value": "US"},
                                  {"field": "employee_count", "op": "gte", "value": 1000}]}],
        "created_at": "2026-11-20T16:30:00Z", "activated_at": "2026-11-20T16:30:00Z"}]})

    version: int
    rules: list[dict[str, Any]]
    fallback_queue: str | None
    handoff: domain.Handoff
    comment: str | None
    active: bool
    created_at: datetime
    activated_at: datetime | None


class DryRun(BaseModel):
    lead_id: str | None = Field(default=None, description="Route a lead routing already knows")
    lead: dict[str, Any] | None = Field(
        default=None, description="Or a lead.scored-shaped payload (flat fields such as country work too)",
        examples=[{"tier": "hot", "score": 80, "profile": {"country": "US", "state": "CA", "employee_count": 500}}],
    )
    version: int | None = Field(default=None, ge=1, le=INT_MAX,
                                description="Try a ruleset version other than the active one")
    at: datetime | None = Field(default=None, description="Decide as if at this time")

    @model_validator(mode="after")
    def _one_lead(self) -> DryRun:
        if (self.lead_id is None) == (self.lead is None):
            raise ValueError("give exactly one of lead_id or lead")
        return self


# -- response examples of the routes that answer plain JSON ---------------------------------

_AUDIT_EXAMPLE: dict[str, Any] = {
    "decided_at": "2026-11-23T09:12:00+00:00", "tier": "hot", "ruleset_version": 4,
    "rules": [{"rule_id": "emea", "matched": True, "conditions": [
        {"field": "region", "op": "eq", "value": "EMEA", "actual": "EMEA", "passed": True}]}],
    "strategy": "round_robin",
    "candidates": [{"rep_id": "rep-grace", "skipped": "outside_working_hours"}, {"rep_id": "rep-ada", "skipped": None}],
    "chosen_rep_id": "rep-ada",
    "strategy_state": {"before": {"last_rep_id": "rep-linus"}, "after": {"last_rep_id": "rep-ada"}},
    "team_id": "emea-sales",
}
_OWNER_EXAMPLE = {"rep_id": "rep-ada", "name": "Ada Lovelace", "email": "ada@example.com", "team_id": "emea-sales"}

ASSIGNMENT_EXAMPLE: dict[str, Any] = {
    "lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4", "status": "assigned", "owner": _OWNER_EXAMPLE,
    "team_id": "emea-sales", "queue": None, "assignment_id": "asg_3f9a2b7c1d0e4f5a9b8c7d6e5f4a3b2c",
    "reason": "rule emea → team emea-sales (round_robin)", "rule_id": "emea", "strategy": "round_robin",
    "routed_at": "2026-11-23T09:12:00Z", "breach_count": 0,
    "history": [{
        "assignment_id": "asg_3f9a2b7c1d0e4f5a9b8c7d6e5f4a3b2c", "at": "2026-11-23T09:12:00Z",
        "outcome": "assigned", "rep_id": "rep-ada", "team_id": "emea-sales", "queue": None,
        "reason": "rule emea → team emea-sales (round_robin)", "rule_id": "emea", "ruleset_version": 4,
        "strategy": "round_robin", "reroute": False, "reroute_reason": None, "previous_owner_rep_id": None,
        "escalated": False, "audit": _AUDIT_EXAMPLE,
    }],
}
class ParkedLeadPublic(BaseModel):
    """A scored lead parked because a team or rep row its routing needs was held by another transaction
    (``handlers.claim_for_scored``); the drainer routes it once the row is free."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "seq": 412, "lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4", "waiting_for": ["team:emea-sales"],
        "parked_at": "2026-12-05T09:12:00Z", "waited_seconds": 74.2, "attempts": 0, "last_error": None}]})

    seq: int = Field(description="Arrival order: the drainer routes the oldest first")
    lead_id: str
    waiting_for: list[str] = Field(description="`team:<id>` or `rep:<id>` rows held by another transaction, or "
                                               "`lead:<id>`: an earlier event of the lead parked before it")
    parked_at: datetime
    waited_seconds: float
    attempts: int = Field(description="Failed attempts to route it once its rows were free")
    last_error: str | None = Field(default=None, description="Why its last attempt failed, if one did")


QUEUED_LEADS_EXAMPLE: list[dict[str, Any]] = [
    {"lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4", "queued_at": "2026-11-23T09:12:00Z", "team_id": "emea-sales"},
]
DRY_RUN_EXAMPLE: dict[str, Any] = {
    "dry_run": True,
    "fields": {"tier": "hot", "score": 80, "country": "GB", "region": "EMEA", "employee_segment": "201-1000",
               "source": "direct"},
    "outcome": "assigned", "reason": "rule emea → team emea-sales (round_robin)", "owner": _OWNER_EXAMPLE,
    "team_id": "emea-sales", "queue": None, "rule_id": "emea", "ruleset_version": 4, "strategy": "round_robin",
    "audit": _AUDIT_EXAMPLE,
    "handoff": {"policy": "mql", "held_in_nurture": False},
}


def json_example(example: Any) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses``: its 200 answer shown by ``example``."""
    return {200: {"content": {"application/json": {"example": example}}}}
