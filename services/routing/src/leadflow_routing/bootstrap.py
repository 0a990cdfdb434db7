"""Everything routing has before its app exists: the platform, its metrics, store and caches, and the
webhook dispatcher's metrics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends

from leadflow_kit.clock import Clock
from leadflow_kit.platform import Platform, deps_dependency
from leadflow_kit.webhooks import WebhookHandOff, WebhookMetrics
from leadflow_routing.busy import BusyRows
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
    # The webhook dispatcher of this process, which a scored batch's webhooks are handed to at commit.
    webhook_hand_off: WebhookHandOff = field(default_factory=WebhookHandOff)
    notifications: NotificationStore = field(default_factory=NotificationStore)
    sla_replica: SlaReplicaStore = field(default_factory=SlaReplicaStore)
    # Set when this process parks a lead: wakes the parked-lead drainer (``parking``).
    parked_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    busy_rows: BusyRows = field(default_factory=BusyRows)


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
