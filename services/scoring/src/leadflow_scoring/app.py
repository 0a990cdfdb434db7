from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from fastapi import FastAPI

from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.consumer import UnitOfWork
from leadflow_kit.privacy import privacy_router
from leadflow_scoring import handlers
from leadflow_scoring.api import admin_router, leads_router
from leadflow_scoring.consumer import build_consumer
from leadflow_scoring.handlers import ModelStore, Scoring, ScoringMetrics
from leadflow_scoring.privacy import PERSONAL_DATA
from leadflow_scoring.seed import install_initial_model
from leadflow_scoring.settings import Settings

log = logging.getLogger(__name__)

MAX_BATCHES_PER_SWEEP = 100


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    scoring = Scoring(ModelStore(), ScoringMetrics(settings.service_name))

    async def install_model(app: FastAPI) -> None:
        await install_initial_model(settings, app.state.db, app.state.clock.now())
        async with app.state.db.transaction() as session:
            scoring.metrics.model_in_use(await scoring.models.active(session))

    app = create_service_app(
        settings,
        title="LeadFlow scoring",
        description="Scores enriched leads with a declarative, versioned model, explains every score, "
                    "re-scores on activity and decay, and tracks lifecycle stages; publishes lead.scored.",
        routers=[admin_router, leads_router, privacy_router(PERSONAL_DATA)],
        consumer=build_consumer(scoring),
        clock=clock,
        on_startup=[install_model],
        background=[decay_sweeper],
    )
    scoring.metrics.register(app.state.metrics.registry)
    app.state.scoring = scoring
    return app


async def decay_sweeper(app: FastAPI) -> None:
    """Re-score fading leads periodically so a stale MQL is recycled even when nothing happens to it."""
    settings: Settings = app.state.settings
    while True:
        await asyncio.sleep(settings.decay_sweep_interval_seconds)
        try:
            # A full batch means more are due: keep going until caught up (bounded, should a lead
            # stay locked by the consumer and keep coming back).
            for _ in range(MAX_BATCHES_PER_SWEEP):
                if (await sweep_once(app)).examined < settings.decay_sweep_batch_size:
                    break
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("decay sweep failed; will try again")


@dataclass(frozen=True)
class SweepOutcome:
    examined: int
    published: int


async def sweep_once(app: FastAPI) -> SweepOutcome:
    """One batch of the leads due for re-scoring."""
    state = app.state
    settings: Settings = state.settings
    scoring: Scoring = state.scoring
    now = state.clock.now()
    async with state.db.transaction() as session:
        active = await handlers.active_model_id(session)
        if active is None:
            return SweepOutcome(0, 0)
        due = await handlers.leads_due_for_sweep(
            session, now, timedelta(seconds=settings.decay_sweep_min_age_seconds), active,
            settings.decay_sweep_batch_size,
        )
    published = 0
    for lead_id in due:
        # One short transaction per lead, so the sweep never holds up the event consumer for long.
        async with state.db.transaction() as session:
            outcome = await handlers.sweep_lead(UnitOfWork(session, state.outbox, state.clock), scoring, lead_id)
        if outcome is not None and outcome.published:
            published += 1
    if published:
        log.info("decay sweep re-published %d of %d leads", published, len(due))
    return SweepOutcome(len(due), published)
