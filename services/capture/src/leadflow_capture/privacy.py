"""Data-subject requests start here: capture records an erasure, announces it, and gathers the answers.

Capture knows every fill, so it turns "this email" or "this lead" into the person's lead ids. The
request row and its ``privacy.erasure_requested`` event commit together (the outbox), so a request
survives any crash; every service, capture included, erases on that event and answers with
``privacy.erasure_completed``, which capture records per service (``handlers.request_erasure``,
``handlers.record_erasure_answers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from leadflow_contracts import topics
from leadflow_kit.privacy import PersonalData, PersonalRows

# Every service that holds data about a person answers an erasure.
SERVICES = ("capture", "enrichment", "scoring", "routing", "sla")

PERSONAL_DATA = PersonalData(
    "capture",
    rows=(
        PersonalRows("activity", "email = :email OR lead_id = ANY(:lead_ids)"),
        # A stored answer to a retried post names the lead it created.
        PersonalRows("idempotency_key",
                     "body LIKE ANY (ARRAY(SELECT '%' || id || '%' FROM unnest(:lead_ids) AS id))"),
        PersonalRows("lead", "id = ANY(:lead_ids) OR email_normalized = :email"),
    ),
    lead_ids="SELECT id FROM lead WHERE email_normalized = :email",
    keyed_topics=(topics.CAPTURED, topics.ACTIVITY),
)


@dataclass(frozen=True)
class NewErasure:
    erasure_id: str
    # The opaque id of the person's email (None when only lead ids with no email are known).
    person_key: str | None
    lead_ids: list[str]
    requested_at: datetime


@dataclass(frozen=True)
class ErasureAnswer:
    rows_erased: int
    completed_at: datetime


@dataclass(frozen=True)
class Erasure:
    """An erasure request and the answers that came back, by service."""

    erasure_id: str
    lead_ids: list[str]
    requested_at: datetime
    completed_at: datetime | None
    answers: dict[str, ErasureAnswer]
