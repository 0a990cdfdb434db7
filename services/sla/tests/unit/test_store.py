"""The store's Python without a database: rows read back into facts, changes written as JSON."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from decimal import Decimal

from leadflow_sla.domain import LeadFacts, SlaClock
from leadflow_sla.store import _LEAD_CHANGES_JSON, _json_value, _record


def test_a_row_becomes_the_dataclass_of_its_columns_of_the_same_names() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    row = {f.name: None for f in fields(LeadFacts)} | {
        "lead_id": "l", "captured_at": at, "stage_rank": 3, "breach_count": 1, "tier": "hot",
        "search_text": "a column the facts do not have"}
    for _ in range(2):  # the field names, read once, serve every later row
        assert _record(LeadFacts, row) == LeadFacts("l", captured_at=at, stage_rank=3, breach_count=1, tier="hot")
    clock_row = {f.name: None for f in fields(SlaClock)} | {"id": "c", "lead_id": "l"}
    assert _record(SlaClock, clock_row) == SlaClock(**clock_row)


def test_a_leads_changes_are_written_as_json_dumps_writes_them() -> None:
    at = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    changes = {"tier": "hot", "score": 91.5, "mql_at": at, "deal_amount": Decimal("10.50"), "lost_at": None,
               "full_name": "Zoë O'Neill", "stage_rank": 2}
    assert _LEAD_CHANGES_JSON.encode(changes) == json.dumps(changes, default=_json_value)
