"""What every console route reaches through FastAPI dependencies: settings, database, service clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

from leadflow_console.clients import ServiceClients
from leadflow_console.settings import Settings
from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import Database
from leadflow_kit.platform import deps_accessor, deps_dependency

if TYPE_CHECKING:
    from leadflow_console.pages import NavItem


@dataclass
class Console:
    settings: Settings
    db: Database
    clients: ServiceClients
    clock: Clock = field(default_factory=SystemClock)
    # Every page's navigation entries, in order (each user sees those of their role).
    navigation: Sequence[NavItem] = ()


request_console = deps_accessor(Console)


ConsoleDep = Annotated[Console, Depends(deps_dependency(Console))]
