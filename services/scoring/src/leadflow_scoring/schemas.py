"""Request and response bodies of the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from leadflow_scoring.versions import ModelVersion


class ScoringModelPublic(BaseModel):
    id: str
    version: int
    name: str
    description: str
    active: bool
    created_at: datetime
    created_by: str | None
    first_activated_at: datetime | None
    spec: dict[str, Any]


def model_public(version: ModelVersion) -> ScoringModelPublic:
    return ScoringModelPublic(
        id=version.id, version=version.version, name=version.name, description=version.description,
        active=version.active, created_at=version.created_at, created_by=version.created_by,
        first_activated_at=version.activated_at, spec=version.spec,
    )
