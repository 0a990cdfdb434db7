"""Everything sla needs, built before its app exists: the platform, metrics, store, webhook metrics and scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from leadflow_kit.clock import Clock
from leadflow_kit.platform import Platform, deps_dependency
from leadflow_kit.webhooks import WebhookMetrics
from leadflow_sla.metrics import SlaMetrics
from leadflow_sla.scheduler import SlaScheduler
from leadflow_sla.settings import Settings
from leadflow_sla.store import SlaStore


@dataclass
class Deps:
    platform: Platform
    settings: Settings
    metrics: SlaMetrics
    store: SlaStore
    # SLA notifications go out through the kit's webhook deliveries.
    webhook_metrics: WebhookMetrics
    # Fires due warnings and breaches and counts open clocks (periodic loops; tests drive it directly).
    scheduler: SlaScheduler = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler = SlaScheduler(self)


def bootstrap(settings: Settings, clock: Clock | None = None) -> Deps:
    platform = Platform.build(settings, clock)
    registry = platform.metrics.registry
    return Deps(platform=platform, settings=settings, metrics=SlaMetrics(registry), store=SlaStore(),
                webhook_metrics=WebhookMetrics(registry))


DepsDep = Annotated[Deps, Depends(deps_dependency(Deps))]
