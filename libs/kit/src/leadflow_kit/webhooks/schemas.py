"""The admin API's request and response bodies (``SubscriptionCreate``, ``SubscriptionPublic``, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from leadflow_kit.egress import parse_url

FilterValues = list[Annotated[str, StringConstraints(min_length=1, max_length=100)]]


class SubscriptionFilters(BaseModel):
    """Which leads a subscription hears about; a property left out (or null) does not filter. A lead
    passes when each property given lists its value: a lead without a value (no team yet, say) does
    not pass a filter on it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"tiers": ["hot", "warm"], "teams": ["team_emea"], "forms": ["demo-request"]}]})

    tiers: FilterValues | None = Field(default=None, min_length=1, max_length=100,
                                       description="Priority tiers (hot, warm, cold)")
    teams: FilterValues | None = Field(default=None, min_length=1, max_length=100,
                                       description="Team ids (the owner's team, or the queue's)")
    forms: FilterValues | None = Field(default=None, min_length=1, max_length=100,
                                       description="Form keys of the lead's fill")


class SubscriptionCreate(BaseModel):
    url: str = Field(max_length=2048, examples=["https://crm.example.com/hooks/leadflow"],
                     description="https; it may not resolve to a loopback, private, link-local, multicast or "
                                 "reserved address")
    event_types: list[str] = Field(min_length=1, examples=[["lead.routed"]])
    description: str | None = None
    filters: SubscriptionFilters | None = Field(default=None, description="None: every lead")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parse_url(value)
        return value


class SubscriptionUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"description": "CRM production endpoint", "active": True}, {"event_types": ["*"]}]})

    url: str | None = Field(default=None, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1)
    description: str | None = None
    active: bool | None = None
    filters: SubscriptionFilters | None = Field(default=None, description="Replaces the filters; {} removes them")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else SubscriptionCreate._http_url(value)


class SubscriptionPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "sub_4e1f0c9a7b2d4c6e8f10", "url": "https://crm.example.com/hooks/leadflow",
        "event_types": ["lead.routed"], "description": "CRM production endpoint", "active": True,
        "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z"}]})

    id: str
    url: str
    event_types: list[str]
    description: str | None = None
    active: bool
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    previous_secret_expires_at: datetime | None = None
    filters: SubscriptionFilters = Field(default_factory=SubscriptionFilters)
    created_at: datetime
    updated_at: datetime


class SubscriptionCreated(SubscriptionPublic):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "sub_4e1f0c9a7b2d4c6e8f10", "url": "https://crm.example.com/hooks/leadflow",
        "event_types": ["lead.routed"], "active": True, "created_at": "2026-11-23T09:00:00Z",
        "updated_at": "2026-11-23T09:00:00Z", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]})

    secret: str = Field(description="The signing secret; shown only in this response")


class SecretRotate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"overlap_seconds": 86400}]})

    overlap_seconds: float | None = Field(
        default=None, ge=0, le=366 * 86400,
        description="How long the old secret keeps signing too (default from settings), at most a year"
    )


class SecretRotated(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "subscription_id": "sub_4e1f0c9a7b2d4c6e8f10", "secret": "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "previous_secret_expires_at": "2026-11-24T09:00:00Z"}]})

    subscription_id: str
    secret: str = Field(description="The new signing secret; shown only in this response")
    previous_secret_expires_at: datetime


DELIVERY_EXAMPLE: dict[str, Any] = {
    "webhook_id": "msg_9b1deb4d3b7d4bad9bdd2b0d7b3dcb6d", "subscription_id": "sub_4e1f0c9a7b2d4c6e8f10",
    "event_type": "lead.routed", "lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4", "status": "pending",
    "attempts": 1, "replays": 0, "next_attempt_at": "2026-11-23T09:00:35Z", "last_attempt_at": "2026-11-23T09:00:05Z",
    "last_status_code": 503, "last_error": "HTTP 503: upstream unavailable", "created_at": "2026-11-23T09:00:04Z",
}


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [DELIVERY_EXAMPLE]})

    webhook_id: str
    subscription_id: str
    event_type: str
    lead_id: str
    status: str
    attempts: int
    replays: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None
    created_at: datetime


class AttemptPublic(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    outcome: str
    next_attempt_at: datetime | None


class DeliveryDetail(DeliveryPublic):
    # The payload as sent (Standard Webhooks body); its data, cut short here, is the service's.
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **DELIVERY_EXAMPLE,
        "payload": {"type": "lead.routed", "timestamp": "2026-11-23T09:00:04Z",
                    "data": {"lead_id": "5b0f7c1e-8d7a-4c43-9a55-0f7de3a1c2b4"}},
        "attempt_log": [{"attempt": 1, "attempted_at": "2026-11-23T09:00:05Z", "status_code": 503,
                         "error": "HTTP 503: upstream unavailable", "duration_ms": 41.7, "outcome": "failed",
                         "next_attempt_at": "2026-11-23T09:00:35Z"}]}]})

    payload: dict[str, Any]
    attempt_log: list[AttemptPublic]


class BulkReplay(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"statuses": ["dead"], "since": "2026-11-23T00:00:00Z"}]})

    statuses: list[Literal["dead", "delivered"]] = Field(default_factory=lambda: ["dead"])  # type: ignore[arg-type]
    since: datetime | None = None
    lead_id: str | None = None


class BulkReplayed(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"replayed": 12}]})

    replayed: int
