"""Finding any lead: the filters, sorts and cursor of ``GET /v1/leads``, and what each found lead shows.

A page is read off one index in its sort order (see tables.py): the cursor is the last lead's sort key
and id, so the next page starts right after it however many leads came or went meanwhile."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from leadflow_sla.domain import FUNNEL_STAGES

Sort = Literal["captured_at", "-captured_at", "score", "-score"]
SORTS: tuple[Sort, ...] = ("captured_at", "-captured_at", "score", "-score")
# A lead not scored yet sorts below every score (scores are never negative).
UNSCORED = -1.0

# Each filter (its query parameter) and the lead column it matches, exactly.
FILTER_COLUMNS = {
    "email": "email",
    "company": "lower(company)",
    "owner": "rep_id",
    "team": "team_id",
    "queue": "queue",
    "stage": "stage_rank",
    "tier": "tier",
    "source": "source",
    "campaign": "utm_campaign",
    "form": "form_key",
}


@dataclass(frozen=True)
class LeadQuery:
    """What a search asks: filters by parameter name (values as the columns hold them), the capture-date
    range [captured_from, captured_to), the sort, the position after which the page starts, its size."""

    filters: dict[str, Any] = field(default_factory=dict)
    captured_from: datetime | None = None
    captured_to: datetime | None = None
    sort: Sort = "-captured_at"
    after: tuple[Any, str] | None = None
    limit: int = 50

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def by_score(self) -> bool:
        return self.sort.endswith("score")


@dataclass(frozen=True)
class FoundLead:
    """One lead as the search lists it (a ``lead`` row and whether a first-touch clock is running)."""

    lead_id: str
    email: str | None
    full_name: str | None
    company: str | None
    stage_rank: int
    tier: str | None
    score: float | None
    rep_id: str | None
    team_id: str | None
    queue: str | None
    source: str | None
    utm_campaign: str | None
    form_key: str | None
    captured_at: datetime
    sla_outcome: str | None
    breach_count: int
    clock_running: bool


def sla_state(found: FoundLead) -> str:
    """``running`` while a first-touch clock runs and has not breached; ``breached`` once one has; ``met``
    when the lead was touched in time; ``none`` when no clock ever ran (not routed to a rep yet)."""
    if found.sla_outcome == "breached":
        return "breached"
    if found.clock_running:
        return "running"
    return found.sla_outcome or "none"


def item(found: FoundLead) -> dict[str, Any]:
    return {
        "lead_id": found.lead_id,
        "email": found.email,
        "name": found.full_name,
        "company": found.company,
        "stage": FUNNEL_STAGES[found.stage_rank],
        "tier": found.tier,
        "score": found.score,
        "owner": found.rep_id,
        "team": found.team_id,
        "queue": found.queue,
        "source": found.source,
        "campaign": found.utm_campaign,
        "form": found.form_key,
        "captured_at": found.captured_at,
        "sla": {"state": sla_state(found), "breach_count": found.breach_count},
    }


def sort_key(found: FoundLead, sort: Sort) -> Any:
    if sort.endswith("score"):
        return found.score if found.score is not None else UNSCORED
    return found.captured_at


def encode_cursor(sort: Sort, key: Any, lead_id: str) -> str:
    """The opaque position after a page's last lead; it names its sort, so no other sort can misread it."""
    value = key.isoformat() if isinstance(key, datetime) else key
    return base64.urlsafe_b64encode(json.dumps([sort, value, lead_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> tuple[Any, str] | None:
    """The position a cursor names, or None when it is not one this search made for ``sort``."""
    try:
        made_for, value, lead_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if made_for != sort or not isinstance(lead_id, str):
            return None
        if sort.endswith("score"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value), lead_id
        at = datetime.fromisoformat(value)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    return (at, lead_id) if at.tzinfo is not None else None
