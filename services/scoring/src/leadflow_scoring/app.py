from __future__ import annotations

from fastapi import FastAPI

from leadflow_kit.app import create_service_app
from leadflow_kit.clock import Clock
from leadflow_kit.periodic import periodic
from leadflow_kit.privacy import privacy_router
from leadflow_scoring import handlers
from leadflow_scoring.admin import admin_router
from leadflow_scoring.api import leads_router
from leadflow_scoring.bootstrap import bootstrap
from leadflow_scoring.consumer import build_consumer
from leadflow_scoring.privacy import PERSONAL_DATA
from leadflow_scoring.seed import install_initial_model
from leadflow_scoring.settings import Settings


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    deps = bootstrap(settings, clock)
    platform = deps.platform

    async def install_model() -> None:
        await install_initial_model(settings, platform.db, deps.store, platform.clock.now())
        async with platform.db.transaction() as session:
            deps.metrics.model_in_use(await deps.store.active_model(session))

    async def sweep_decay() -> None:
        await handlers.sweep_decay(deps)

    return create_service_app(
        platform,
        deps,
        title="LeadFlow scoring",
        description="Scores enriched leads with a declarative, versioned model, explains every score, "
                    "re-scores on activity and decay, and tracks lifecycle stages; publishes lead.scored.",
        routers=[admin_router, leads_router, privacy_router(PERSONAL_DATA)],
        consumer=build_consumer(),
        on_startup=[install_model],
        # Re-score fading leads periodically so a stale MQL is recycled even when nothing happens to it.
        background=[periodic("decay-sweep", settings.decay_sweep_interval_seconds, sweep_decay, wait_first=True)],
    )
