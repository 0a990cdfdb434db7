from __future__ import annotations

from leadflow_enrichment.accounts import AccountCreate
from leadflow_enrichment.settings import Settings
from leadflow_enrichment.store import EnrichmentStore
from leadflow_kit.clock import SystemClock
from leadflow_kit.db import Database

# Owners are the reps routing seeds (rep-ada, rep-grace, rep-linus), so account-owner routing shows in `make demo`.
DEMO_ACCOUNTS = (
    AccountCreate(id="acct-acme", name="Acme, Inc.", domains=["acme.com"], industry="Software",
                  employee_count=1200, annual_revenue=250_000_000, country="US", owner_rep_id="rep-ada",
                  tier="enterprise"),
    AccountCreate(id="acct-globex", name="Globex Corporation", domains=["globex.com"], industry="Manufacturing",
                  employee_count=5400, annual_revenue=1_200_000_000, country="US", owner_rep_id="rep-grace",
                  tier="enterprise"),
    AccountCreate(id="acct-initech", name="Initech GmbH", domains=["initech.de"], industry="Financial Services",
                  employee_count=320, annual_revenue=45_000_000, country="DE", owner_rep_id="rep-linus",
                  tier="mid-market"),
    AccountCreate(id="acct-hooli", name="Hooli", domains=["hooli.io"], industry="Internet",
                  employee_count=80, annual_revenue=9_000_000, country="GB", tier="smb"),
)


async def seed_demo(settings: Settings, db: Database) -> None:
    """Demo accounts (idempotent: re-running restores them as listed)."""
    async with db.transaction() as session:
        await EnrichmentStore().upsert_accounts(session, list(DEMO_ACCOUNTS), SystemClock().now())
