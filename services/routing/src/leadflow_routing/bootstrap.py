"""Everything routing has before its app exists: the platform, its metrics, store and caches, and the
webhook dispatcher's metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from leadflow_kit.clock import Clock
from leadflow_kit.platform import Platform, deps_dependency
from leadflow_kit.webhooks import WebhookMetrics
from leadflow_routing.metrics import RoutingMetrics
from leadflow_routing.notifications.store import NotificationStore
from leadflow_routing.settings import Settings
from leadflow_routing.sla_replica_store import SlaReplicaStore
from leadflow_routing.store import RoutingStore, RulesetCache


@dataclass
class Deps:
    platform: Platform
    settings: Settings
    metrics: RoutingMetrics
    store: RoutingStore
    rulesets: RulesetCache
    webhook_metrics: WebhookMetrics
    notifications: NotificationStore = field(default_factory=NotificationStore)
    sla_replica: SlaReplicaStore = field(default_factory=SlaReplicaStore)


def bootstrap(settings: Settings, clock: Clock | None = None) -> Deps:
    platform = Platform.build(settings, clock)
    return Deps(
        platform=platform,
        settings=settings,
        metrics=RoutingMetrics(platform.metrics.registry),
        store=RoutingStore(),
        rulesets=RulesetCache(),
        webhook_metrics=WebhookMetrics(platform.metrics.registry),
    )


DepsDep = Annotated[Deps, Depends(deps_dependency(Deps))]
