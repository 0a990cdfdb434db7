"""What every console route reaches through FastAPI dependencies: settings, database, service clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, Request

from leadflow_console.clients import ServiceClients
from leadflow_console.settings import Settings
from leadflow_kit.clock import Clock, SystemClock
from leadflow_kit.db import Database


@dataclass
class Console:
    settings: Settings
    db: Database
    clients: ServiceClients
    clock: Clock = field(default_factory=SystemClock)


def request_console(request: Request) -> Console:
    return cast(Console, request.app.state.console)


ConsoleDep = Annotated[Console, Depends(request_console)]
