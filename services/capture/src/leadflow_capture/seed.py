from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert

from leadflow_capture.settings import Settings
from leadflow_capture.tables import form
from leadflow_kit.db import Database


async def seed_demo(settings: Settings, db: Database) -> None:
    """The `demo` form that `make up` and `make demo` use."""
    async with db.transaction() as session:
        await session.execute(
            insert(form)
            .values(key="demo", name="Demo request", field_mapping={}, required_fields=["email"])
            .on_conflict_do_nothing()
        )
