from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from leadflow_kit.db import Database
from leadflow_kit.webhooks import subscription_table
from leadflow_routing.handlers import WEBHOOK_EVENT_TYPE, WEBHOOK_UPDATE_EVENT_TYPE
from leadflow_routing.settings import Settings
from leadflow_routing.tables import rep, routing_ruleset, team

DEMO_TEAM = "sales"
DEMO_REPS = (("rep-ada", "Ada Lovelace"), ("rep-grace", "Grace Hopper"), ("rep-linus", "Linus Torvalds"))
DEMO_SUBSCRIPTION = "sub_demo"


async def seed_demo(settings: Settings, db: Database) -> None:
    """Team `sales` (round-robin over three reps), a catch-all rule to it, and — with
    ROUTING_DEMO_WEBHOOK_URL set — lead.routed and lead.updated webhooks to that URL signed with the demo secret."""
    async with db.transaction() as session:
        await session.execute(
            insert(team).values(id=DEMO_TEAM, name="Sales", strategy="round_robin").on_conflict_do_nothing()
        )
        for rep_id, name in DEMO_REPS:
            await session.execute(
                insert(rep)
                .values(id=rep_id, name=name, email=f"{rep_id.removeprefix('rep-')}@leadflow.example",
                        team_id=DEMO_TEAM)
                .on_conflict_do_nothing()
            )
        has_rules = (await session.execute(select(routing_ruleset.c.version).limit(1))).first()
        if has_rules is None:
            await session.execute(
                insert(routing_ruleset).values(
                    version=1,
                    rules=[{"id": "everyone-to-sales", "name": "Every lead to the sales team", "match": "all",
                            "conditions": [], "team_id": DEMO_TEAM, "rep_id": None, "enabled": True}],
                    fallback_queue=settings.default_fallback_queue,
                    comment="demo seed",
                    active=True,
                )
            )
        if settings.demo_webhook_url:
            values = {"url": settings.demo_webhook_url, "event_types": [WEBHOOK_EVENT_TYPE, WEBHOOK_UPDATE_EVENT_TYPE],
                      "secret_ciphertext": settings.secret_box().encrypt(settings.demo_webhook_secret),
                      "active": True, "description": "demo CRM receiver"}
            await session.execute(
                insert(subscription_table)
                .values(id=DEMO_SUBSCRIPTION, **values)
                .on_conflict_do_update(index_elements=[subscription_table.c.id], set_=values)
            )
