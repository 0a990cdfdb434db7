from __future__ import annotations

from leadflow_kit.db import Database
from leadflow_sla.settings import Settings
from leadflow_sla.store import SlaStore


async def seed_demo(settings: Settings, db: Database) -> None:
    """The default policies (hot 5 min, warm 1 h, cold 24 h); the migration already adds them."""
    async with db.transaction() as session:
        await SlaStore().ensure_default_policies(session)
