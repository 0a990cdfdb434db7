"""Dry runs: how a draft model would score given leads, or the last N real ones, against the active model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_scoring import domain
from leadflow_scoring.domain import LeadFields
from leadflow_scoring.model import ScoringModelSpec
from leadflow_scoring.schemas import (
    DryRunLead,
    DryRunLeadResult,
    DryRunResult,
    DryRunSummary,
    ScoreSnapshot,
)
from leadflow_scoring.store import ScoringStore


@dataclass(frozen=True)
class Subject:
    lead_id: str
    facts: dict[str, Any]
    activities: list[domain.Activity]


def subjects_from_request(leads: Sequence[DryRunLead], now: datetime) -> list[Subject]:
    out = []
    for i, lead in enumerate(leads):
        activities = [
            domain.Activity(a.activity_id or f"given-{i}-{j}", a.activity_type, a.occurred_at, a.page_url,
                            dict(a.properties))
            for j, a in enumerate(lead.activities)
        ]
        if lead.form_key:
            activities.append(domain.Activity(f"given-{i}-form", domain.FORM_SUBMISSION, lead.submitted_at or now,
                                              properties={"form_key": lead.form_key}))
        out.append(Subject(lead.lead_id or f"lead-{i + 1}", domain.lead_facts(LeadFields.of(lead)), activities))
    return out


async def recent_subjects(session: AsyncSession, store: ScoringStore, limit: int) -> list[Subject]:
    return [
        Subject(lead.lead_id, domain.lead_facts(lead.enriched), await store.activities_of(session, lead.lead_id))
        for lead in await store.recent_leads(session, limit)
    ]


def _snapshot(result: domain.ScoreResult, breakdown: bool) -> ScoreSnapshot:
    return ScoreSnapshot(
        score=result.score, fit_grade=result.fit_grade, engagement_level=result.engagement_level, tier=result.tier,
        is_mql=result.is_mql, breakdown=list(result.lines) if breakdown else None,
    )


def compare(
    current: ScoringModelSpec, current_id: str, draft: ScoringModelSpec, draft_id: str | None,
    subjects: Sequence[Subject], now: datetime,
) -> DryRunResult:
    results = []
    before_tiers: Counter[str] = Counter()
    after_tiers: Counter[str] = Counter()
    mql_before = mql_after = changed = 0
    total_delta = 0.0
    current_model, draft_model = domain.CompiledModel(current), domain.CompiledModel(draft)
    for subject in subjects:
        before = current_model.score(subject.facts, subject.activities, now)
        after = draft_model.score(subject.facts, subject.activities, now)
        diff = domain.differences(before, after)
        changed += bool(diff)
        before_tiers[before.tier] += 1
        after_tiers[after.tier] += 1
        mql_before += before.is_mql
        mql_after += after.is_mql
        total_delta += after.score - before.score
        results.append(DryRunLeadResult(
            lead_id=subject.lead_id, current=_snapshot(before, breakdown=False), draft=_snapshot(after, breakdown=True),
            score_change=round(after.score - before.score, 1), changes=diff,
        ))
    summary = DryRunSummary(
        leads=len(subjects), changed=changed, mql_current=mql_before, mql_draft=mql_after,
        tiers_current=dict(before_tiers), tiers_draft=dict(after_tiers),
        average_score_change=round(total_delta / len(subjects), 2) if subjects else 0.0,
    )
    return DryRunResult(current_model=current_id, draft_model=draft_id or draft.name, as_of=now, summary=summary,
                        leads=results)
