"""Every SQL statement of routing's replica of sla's SLA configuration (``sla_replica.py``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_contracts import SlaPolicyTerms
from leadflow_kit.db import driver_connection

# A record older than what the replica holds (sla's start-up republish racing an admin change) is ignored.
_UPSERT_POLICY = """
INSERT INTO sla_policy_replica (policy_id, tier, terms, changed_at) VALUES ($1, $2, $3::jsonb, $4)
ON CONFLICT (policy_id) DO UPDATE SET tier = EXCLUDED.tier, terms = EXCLUDED.terms, changed_at = EXCLUDED.changed_at
WHERE sla_policy_replica.changed_at <= EXCLUDED.changed_at
"""
_UPSERT_CALENDAR = """
INSERT INTO sla_calendar_replica (rep_id, business_hours, changed_at) VALUES ($1, $2::jsonb, $3)
ON CONFLICT (rep_id) DO UPDATE SET business_hours = EXCLUDED.business_hours, changed_at = EXCLUDED.changed_at
WHERE sla_calendar_replica.changed_at <= EXCLUDED.changed_at
"""
# One round trip per batch of hand-offs: whether any policy was replicated yet, the tiers' live policies,
# and the owners' own calendars.
_SNAPSHOT = """
SELECT EXISTS (SELECT 1 FROM sla_policy_replica) AS replicated,
       coalesce((SELECT jsonb_object_agg(rep_id, business_hours) FROM sla_calendar_replica
                 WHERE rep_id = ANY($2::text[]) AND business_hours IS NOT NULL), '{}'::jsonb) AS owner_hours,
       coalesce((SELECT jsonb_agg(jsonb_build_object('policy_id', policy_id, 'terms', terms) ORDER BY policy_id)
                 FROM sla_policy_replica
                 WHERE tier = ANY($1::text[]) AND terms IS NOT NULL AND (terms ->> 'active')::boolean),
                '[]'::jsonb) AS policies
"""


@dataclass(frozen=True)
class ReplicatedPolicies:
    """What the replica knows for one lead's clock: the tier's active policies and the owner's calendar."""

    replicated: bool  # False until the first policy record arrives: routing knows nothing of sla's policies
    policies: list[tuple[str, SlaPolicyTerms]]
    owner_hours: dict[str, Any] | None


@dataclass(frozen=True)
class ReplicaSnapshot:
    """What the replica knows for a batch's clocks: the asked tiers' active policies, the owners' calendars."""

    replicated: bool
    policies: list[tuple[str, SlaPolicyTerms]]
    owner_hours: dict[str, dict[str, Any]]

    def for_lead(self, tier: str, rep_id: str | None) -> ReplicatedPolicies:
        return ReplicatedPolicies(self.replicated, [(i, terms) for i, terms in self.policies if terms.tier == tier],
                                  self.owner_hours.get(rep_id) if rep_id else None)


class SlaReplicaStore:
    async def save_policy(
        self, session: AsyncSession, policy_id: str, terms: SlaPolicyTerms | None, changed_at: datetime
    ) -> None:
        conn = await driver_connection(session)
        stored = json.dumps(terms.model_dump(mode="json")) if terms is not None else None
        await conn.execute(_UPSERT_POLICY, policy_id, terms.tier if terms else None, stored, changed_at)

    async def save_calendar(
        self, session: AsyncSession, rep_id: str, business_hours: dict[str, Any] | None, changed_at: datetime
    ) -> None:
        conn = await driver_connection(session)
        stored = json.dumps(business_hours) if business_hours is not None else None
        await conn.execute(_UPSERT_CALENDAR, rep_id, stored, changed_at)

    async def snapshot(self, session: AsyncSession, tiers: Sequence[str], rep_ids: Sequence[str]) -> ReplicaSnapshot:
        conn = await driver_connection(session)
        row = await conn.fetchrow(_SNAPSHOT, list(tiers), list(rep_ids))
        if row is None:  # a SELECT without FROM always answers one row
            raise RuntimeError("the replica's policy query answered no row")
        return ReplicaSnapshot(
            replicated=row["replicated"],
            policies=[(p["policy_id"], SlaPolicyTerms.model_validate(p["terms"])) for p in _json(row["policies"])],
            owner_hours=_json(row["owner_hours"]),
        )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
