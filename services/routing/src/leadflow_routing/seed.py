from __future__ import annotations

from leadflow_kit.db import Database
from leadflow_routing.handlers import WEBHOOK_EVENT_TYPE, WEBHOOK_UPDATE_EVENT_TYPE
from leadflow_routing.settings import Settings
from leadflow_routing.store import RoutingStore

DEMO_TEAM = "sales"
DEMO_REPS = (("rep-ada", "Ada Lovelace"), ("rep-grace", "Grace Hopper"), ("rep-linus", "Linus Torvalds"))
DEMO_SUBSCRIPTION = "sub_demo"


async def seed_demo(settings: Settings, db: Database) -> None:
    """Team `sales` (round-robin over three reps), a catch-all rule to it handing off at
    ROUTING_DEMO_HANDOFF (MQLs to sales, by default), and — with
    ROUTING_DEMO_WEBHOOK_URL set — lead.routed and lead.updated webhooks to that URL signed with the demo secret."""
    store = RoutingStore()
    async with db.transaction() as session:
        await store.ensure_team(session, DEMO_TEAM, "Sales", "round_robin")
        for rep_id, name in DEMO_REPS:
            await store.ensure_rep(session, rep_id, name, f"{rep_id.removeprefix('rep-')}@leadflow.example", DEMO_TEAM)
        if not await store.has_rulesets(session):
            await store.seed_first_ruleset(
                session,
                [{"id": "everyone-to-sales", "name": "Every lead to the sales team", "match": "all",
                  "conditions": [], "team_id": DEMO_TEAM, "rep_id": None, "enabled": True}],
                settings.default_fallback_queue, "demo seed", settings.demo_handoff,
            )
        if settings.demo_webhook_url:
            await store.put_webhook_subscription(
                session, DEMO_SUBSCRIPTION, url=settings.demo_webhook_url,
                event_types=[WEBHOOK_EVENT_TYPE, WEBHOOK_UPDATE_EVENT_TYPE],
                secret_ciphertext=settings.secret_box().encrypt(settings.demo_webhook_secret.get_secret_value()),
                description="demo CRM receiver",
            )
