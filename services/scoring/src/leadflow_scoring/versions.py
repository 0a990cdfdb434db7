"""Model lifecycle: save a version, activate it, roll back; every version is kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_scoring.model import ScoringModelSpec
from leadflow_scoring.tables import model_activation, scoring_model

VERSION_LOCK = "scoring-model-versions"


class UnknownModel(LookupError):
    pass


class NothingToRollBack(LookupError):
    pass


@dataclass(frozen=True)
class ModelVersion:
    id: str
    version: int
    name: str
    description: str
    spec: dict[str, Any]
    created_at: datetime
    created_by: str | None
    active: bool
    activated_at: datetime | None


async def _serialize(session: AsyncSession) -> None:
    # Version numbers and the activation log are written one writer at a time.
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": VERSION_LOCK})


async def save_version(
    session: AsyncSession, spec: ScoringModelSpec, *, source_text: str | None, created_by: str | None
) -> str:
    await _serialize(session)
    version = int((await session.execute(select(func.coalesce(func.max(scoring_model.c.version), 0)))).scalar_one()) + 1
    model_id = f"{spec.name}.v{version}"
    await session.execute(
        insert(scoring_model).values(
            id=model_id, version=version, name=spec.name, description=spec.description,
            spec=spec.model_dump(mode="json"), source_text=source_text, created_by=created_by,
        )
    )
    return model_id


async def activate(session: AsyncSession, model_id: str, *, by: str | None, now: datetime) -> None:
    await _serialize(session)
    exists = (await session.execute(select(scoring_model.c.id).where(scoring_model.c.id == model_id))).first()
    if exists is None:
        raise UnknownModel(model_id)
    await session.execute(insert(model_activation).values(model_id=model_id, activated_by=by, activated_at=now))


async def rollback(session: AsyncSession, *, by: str | None, now: datetime) -> str:
    """Undo the latest activation; the model active before it is active again. Returns its id."""
    await _serialize(session)
    live = (
        await session.execute(
            select(model_activation.c.id, model_activation.c.model_id)
            .where(model_activation.c.rolled_back_at.is_(None))
            .order_by(model_activation.c.id.desc())
            .limit(2)
        )
    ).all()
    if len(live) < 2:
        raise NothingToRollBack("no earlier activation to roll back to")
    await session.execute(
        update(model_activation)
        .where(model_activation.c.id == live[0].id)
        .values(rolled_back_at=now, rolled_back_by=by)
    )
    return str(live[1].model_id)


async def ensure_initial_model(session: AsyncSession, spec: ScoringModelSpec, source_text: str, now: datetime) -> bool:
    """Install and activate ``spec`` when no model exists yet (first start, seed-demo); True when it did."""
    await _serialize(session)
    if (await session.execute(select(scoring_model.c.id).limit(1))).first() is not None:
        return False
    model_id = await save_version(session, spec, source_text=source_text, created_by="bootstrap")
    await activate(session, model_id, by="bootstrap", now=now)
    return True


async def list_versions(session: AsyncSession) -> list[ModelVersion]:
    active_id, first_activation = await _activation_facts(session)
    rows = (await session.execute(select(scoring_model).order_by(scoring_model.c.version.desc()))).all()
    return [_version(r, active_id, first_activation) for r in rows]


async def get_version(session: AsyncSession, model_id: str) -> ModelVersion:
    row = (await session.execute(select(scoring_model).where(scoring_model.c.id == model_id))).first()
    if row is None:
        raise UnknownModel(model_id)
    active_id, first_activation = await _activation_facts(session)
    return _version(row, active_id, first_activation)


async def source_text_of(session: AsyncSession, model_id: str) -> str | None:
    return (
        await session.execute(select(scoring_model.c.source_text).where(scoring_model.c.id == model_id))
    ).scalar_one_or_none()


async def activation_log(session: AsyncSession) -> list[dict[str, Any]]:
    rows = (await session.execute(select(model_activation).order_by(model_activation.c.id.desc()))).all()
    return [dict(r._mapping) for r in rows]


async def _activation_facts(session: AsyncSession) -> tuple[str | None, dict[str, datetime]]:
    rows = (await session.execute(select(model_activation).order_by(model_activation.c.id))).all()
    first: dict[str, datetime] = {}
    active_id = None
    for r in rows:
        first.setdefault(r.model_id, r.activated_at)
        if r.rolled_back_at is None:
            active_id = r.model_id
    return active_id, first


def _version(row: Any, active_id: str | None, first_activation: dict[str, datetime]) -> ModelVersion:
    return ModelVersion(
        id=row.id, version=row.version, name=row.name, description=row.description, spec=row.spec,
        created_at=row.created_at, created_by=row.created_by, active=row.id == active_id,
        activated_at=first_activation.get(row.id),
    )


async def active_version(session: AsyncSession) -> ModelVersion | None:
    active_id, _ = await _activation_facts(session)
    return await get_version(session, active_id) if active_id else None
