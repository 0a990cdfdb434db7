"""Everything scoring needs, built before its app exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from leadflow_kit.clock import Clock
from leadflow_kit.platform import Platform, deps_dependency
from leadflow_scoring.metrics import ScoringMetrics
from leadflow_scoring.settings import Settings
from leadflow_scoring.store import ScoringStore


@dataclass
class Deps:
    platform: Platform
    settings: Settings
    metrics: ScoringMetrics
    store: ScoringStore


def bootstrap(settings: Settings, clock: Clock | None = None) -> Deps:
    platform = Platform.build(settings, clock)
    return Deps(
        platform=platform,
        settings=settings,
        metrics=ScoringMetrics(platform.metrics.registry, settings.service_name),
        store=ScoringStore(),
    )


DepsDep = Annotated[Deps, Depends(deps_dependency(Deps))]
