from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from leadflow_kit.db import Database
from leadflow_scoring.model import default_model_text, parse_document, validate_model
from leadflow_scoring.settings import Settings
from leadflow_scoring.store import ScoringStore

log = logging.getLogger(__name__)


def initial_model_text(settings: Settings) -> str:
    if settings.initial_model_path:
        return Path(settings.initial_model_path).read_text()
    return default_model_text()


async def install_initial_model(settings: Settings, db: Database, store: ScoringStore, now: datetime) -> None:
    """Install the shipped default (or the configured file) as version 1 when there is no model yet."""
    source = initial_model_text(settings)
    spec = validate_model(parse_document(source))
    async with db.transaction() as session:
        if await store.install_initial_model(session, spec, source, now):
            log.info("installed and activated the initial scoring model %s", spec.name)


async def seed_demo(settings: Settings, db: Database) -> None:
    """The default model, active; idempotent."""
    await install_initial_model(settings, db, ScoringStore(), datetime.now(UTC))
