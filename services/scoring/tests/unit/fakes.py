"""An in-memory ``ScoringStore`` for handler unit tests, and the ``Deps`` around it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.platform import Platform
from leadflow_scoring import domain
from leadflow_scoring.bootstrap import Deps
from leadflow_scoring.metrics import ScoringMetrics
from leadflow_scoring.model import ScoringModelSpec, default_model
from leadflow_scoring.settings import Settings
from leadflow_scoring.store import (
    MAX_ACTIVITIES_PER_LEAD,
    ActivityRecord,
    FormFill,
    LeadState,
    NothingToRollBack,
    RecentLead,
    RecordedActivity,
    ScoreChange,
    ScoredLead,
    ScoreWrite,
    ScoringStore,
    StoredModel,
    UnknownModel,
    identities,
    scored_after,
)

DEFAULT_MODEL = default_model()


@dataclass
class StoredActivity:
    activity_id: str
    lead_id: str | None
    wanted_lead_id: str | None
    email: str | None
    visitor_id: str | None
    activity_type: str
    occurred_at: datetime
    page_url: str | None
    properties: dict[str, str]
    credited_at: datetime | None


@dataclass
class StoredActivation:
    model_id: str
    rolled_back: bool = False


class FakeScoringStore(ScoringStore):
    """Scoring's tables as dicts and lists. Locks are recorded, not taken; ``busy`` names the leads an
    event holds (the sweep's try-lock fails for them); a commit is immediate."""

    def __init__(self) -> None:
        super().__init__()
        self.leads: dict[str, ScoredLead] = {}
        self.activities: dict[str, StoredActivity] = {}
        self.identities: dict[tuple[str, str], str] = {}
        self.models: dict[str, StoredModel] = {}
        self.activations: list[StoredActivation] = []
        self.changes: list[ScoreWrite] = []  # the writes that explain a published event
        self.locked: list[str] = []
        self.busy: set[str] = set()
        # How many statements the real store would have run for what the handlers asked of this one.
        self.statements = 0

    async def lock(self, session: AsyncSession, keys: Sequence[str]) -> None:
        self.locked.extend(sorted(set(keys)))
        self.statements += 1

    async def try_lock_lead(self, session: AsyncSession, lead_id: str) -> bool:
        return lead_id not in self.busy

    async def record_form_fills(self, session: AsyncSession, fills: Sequence[FormFill]) -> list[set[str]]:
        self.statements += 1
        return [self._record_form_fill(fill) for fill in fills]

    def _record_form_fill(self, fill: FormFill) -> set[str]:
        kinds, values = identities(("lead", fill.lead_id), ("lead", fill.captured_lead_id), ("email", fill.email),
                                   ("visitor", fill.visitor_id))
        for kind, value in zip(kinds, values, strict=True):
            self.identities.setdefault((kind, value), fill.lead_id)
        credited = [
            a for a in self.activities.values()
            if a.lead_id is None and (a.wanted_lead_id in (fill.lead_id, fill.captured_lead_id)
                                      or (fill.email is not None and a.email == fill.email)
                                      or (fill.visitor_id is not None and a.visitor_id == fill.visitor_id))
        ]
        for waiting in credited:
            waiting.lead_id, waiting.credited_at = fill.lead_id, fill.received_at
        brought = {waiting.activity_id for waiting in credited}
        form_id = f"form:{fill.captured_lead_id}"
        if form_id not in self.activities:
            self.activities[form_id] = StoredActivity(
                form_id, fill.lead_id, None, None, None, domain.FORM_SUBMISSION, fill.submitted_at, None,
                {"form_key": fill.form_key}, fill.received_at)
            brought.add(form_id)
        return brought

    async def record_activities(self, session: AsyncSession,
                                records: Sequence[ActivityRecord]) -> list[RecordedActivity | None]:
        self.statements += 1
        return [self._record_activity(record) for record in records]

    def _record_activity(self, record: ActivityRecord) -> RecordedActivity | None:
        if record.activity_id in self.activities:
            return None
        kinds, values = identities(("lead", record.lead_id), ("email", record.email), ("visitor", record.visitor_id))
        lead_id = next((self.identities[key] for key in zip(kinds, values, strict=True) if key in self.identities),
                       None)
        self.activities[record.activity_id] = StoredActivity(
            record.activity_id, lead_id, record.lead_id, record.email, record.visitor_id, record.activity_type,
            record.occurred_at, record.page_url, dict(record.properties),
            record.received_at if lead_id is not None else None)
        if lead_id is not None and record.visitor_id:
            self.identities.setdefault(("visitor", record.visitor_id), lead_id)
        return RecordedActivity(lead_id)

    async def lock_touched_leads(self, session: AsyncSession, lead_ids: Sequence[str]) -> list[str]:
        self.statements += 1
        return [self.identities.get(("lead", lead_id), lead_id) for lead_id in lead_ids]

    async def load_leads(self, session: AsyncSession, lead_ids: Sequence[str],
                         max_activities: int = MAX_ACTIVITIES_PER_LEAD) -> dict[str, LeadState]:
        self.statements += 1
        return {lead_id: LeadState(self.leads.get(lead_id), self._active_id(),
                                   (await self.activities_of(session, lead_id, max_activities)))
                for lead_id in lead_ids}

    async def save_scores(self, session: AsyncSession, writes: Sequence[ScoreWrite]) -> None:
        self.statements += 1 if writes else 0
        for write in writes:
            assert write.new_lead == (write.lead_id not in self.leads), "a new lead must be new, an update needs one"
            self.leads[write.lead_id] = scored_after(self.leads.get(write.lead_id), write)
            if write.event_id is not None:
                self.changes.append(write)

    async def leads_due_for_sweep(
        self, session: AsyncSession, now: datetime, min_age: timedelta, active_model: str, limit: int
    ) -> list[str]:
        due = sorted(
            (lead for lead in self.leads.values()
             if lead.lifecycle_stage in domain.SCORING_STAGES and lead.scored_at <= now - min_age
             and (lead.behavior_points != 0 or lead.model_id != active_model)),
            key=lambda lead: lead.scored_at,
        )
        return [lead.lead_id for lead in due[:limit]]

    async def model(self, session: AsyncSession, model_id: str) -> StoredModel | None:
        return self.models.get(model_id)

    async def active_model_id(self, session: AsyncSession) -> str | None:
        return self._active_id()

    def _active_id(self) -> str | None:
        live = [activation for activation in self.activations if not activation.rolled_back]
        return live[-1].model_id if live else None

    async def save_version(
        self, session: AsyncSession, spec: ScoringModelSpec, *, source_text: str | None, created_by: str | None
    ) -> str:
        version = len(self.models) + 1
        model_id = f"{spec.name}.v{version}"
        self.models[model_id] = StoredModel(model_id, version, spec.name, spec)
        return model_id

    async def activate(self, session: AsyncSession, model_id: str, *, by: str | None, now: datetime) -> None:
        if model_id not in self.models:
            raise UnknownModel(model_id)
        self.activations.append(StoredActivation(model_id))

    async def rollback(self, session: AsyncSession, *, by: str | None, now: datetime) -> str:
        live = [activation for activation in self.activations if not activation.rolled_back]
        if len(live) < 2:
            raise NothingToRollBack("no earlier activation to roll back to")
        live[-1].rolled_back = True
        return live[-2].model_id

    async def install_initial_model(
        self, session: AsyncSession, spec: ScoringModelSpec, source_text: str, now: datetime
    ) -> bool:
        if self.models:
            return False
        await self.activate(session, await self.save_version(session, spec, source_text=source_text,
                                                             created_by="bootstrap"), by="bootstrap", now=now)
        return True

    async def canonical_lead_id(self, session: AsyncSession, lead_id: str) -> str:
        return self.identities.get(("lead", lead_id), lead_id)

    async def scored_lead(self, session: AsyncSession, lead_id: str) -> ScoredLead | None:
        return self.leads.get(lead_id)

    async def score_changes(self, session: AsyncSession, lead_id: str, limit: int) -> list[ScoreChange]:
        mine = [write for write in reversed(self.changes) if write.lead_id == lead_id][:limit]
        return [ScoreChange(
            at=w.scored_at, trigger=w.trigger, cause=w.cause, score=w.result.score, previous_score=w.previous_score,
            fit_grade=w.result.fit_grade, engagement_level=w.result.engagement_level, tier=w.result.tier,
            is_mql=w.result.is_mql, model_version=w.model_id, lifecycle_stage=w.stage,
            previous_stage=w.previous_stage, breakdown=list(w.result.lines)) for w in mine]

    async def recent_leads(self, session: AsyncSession, limit: int) -> list[RecentLead]:
        newest = sorted(self.leads.values(), key=lambda lead: lead.scored_at, reverse=True)[:limit]
        return [RecentLead(lead.lead_id, lead.enriched) for lead in newest]

    async def activities_of(self, session: AsyncSession, lead_id: str,
                            limit: int = MAX_ACTIVITIES_PER_LEAD) -> list[domain.Activity]:
        mine = sorted((a for a in self.activities.values() if a.lead_id == lead_id),
                      key=lambda a: a.occurred_at, reverse=True)
        return [domain.Activity(a.activity_id, a.activity_type, a.occurred_at, a.page_url, dict(a.properties))
                for a in mine[:limit]]


def fake_deps(store: FakeScoringStore | None = None, *, with_default_model: bool = True) -> Deps:
    """Scoring's deps over a fake store (with the shipped model installed and active, unless told not to)."""
    settings = Settings(environment="test")
    platform = Platform.build(settings)
    store = store or FakeScoringStore()
    if with_default_model:
        spec = DEFAULT_MODEL
        store.models[f"{spec.name}.v1"] = StoredModel(f"{spec.name}.v1", 1, spec.name, spec)
        store.activations.append(StoredActivation(f"{spec.name}.v1"))
    return Deps(platform=platform, settings=settings, metrics=ScoringMetrics(platform.metrics.registry, "scoring"),
                store=store)
