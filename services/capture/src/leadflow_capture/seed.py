from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from leadflow_capture.settings import Settings
from leadflow_capture.tables import form
from leadflow_kit.db import Database


async def seed_demo(settings: Settings, db: Database) -> None:
    """The `demo` form that `make up` and `make demo` use: email required, any origin may post."""
    async with db.transaction() as session:
        await session.execute(
            insert(form)
            .values(key="demo", name="Demo request", field_mapping={}, required_fields=["email"],
                    allowed_origins=["*"])
            # A demo form made before forms had allowed origins gets them; any other change is kept.
            .on_conflict_do_update(
                index_elements=[form.c.key],
                set_={"allowed_origins": ["*"]},
                where=form.c.allowed_origins == text("'[]'::jsonb"),
            )
        )
