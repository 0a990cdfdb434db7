from __future__ import annotations

from leadflow_capture.settings import Settings
from leadflow_capture.store import CaptureStore
from leadflow_kit.db import Database


async def seed_demo(settings: Settings, db: Database) -> None:
    """The `demo` form that `make up` and `make demo` use: email required, any origin may post."""
    async with db.transaction() as session:
        await CaptureStore().seed_demo_form(session)
