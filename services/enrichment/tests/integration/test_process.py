"""`python -m leadflow_enrichment` as make up runs it: migrate, seed-demo, serve — a separate process."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer dev-admin-key"}


async def test_service_process_migrates_seeds_demo_accounts_and_serves(infra):
    prefix = infra.new_topic_prefix("enrichment-proc")
    await infra.create_topics(prefix, partitions=1)
    config = await infra.start_service("enrichment", {"ADMIN_API_KEY": "dev-admin-key"}, topic_prefix=prefix,
                                       seed_demo=True)
    try:
        async with httpx.AsyncClient(base_url=config.url, timeout=10) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            accounts = (await client.get("/v1/admin/accounts", headers=ADMIN)).json()
            by_id = {a["id"]: a for a in accounts}
            assert by_id["acct-acme"]["domains"] == ["acme.com"]
            assert by_id["acct-acme"]["owner_rep_id"] == "rep-ada"
            assert {"rep-ada", "rep-grace", "rep-linus"} <= {a["owner_rep_id"] for a in accounts}
            metrics = (await client.get("/metrics")).text
            assert "leadflow_enrichment_quality_score" in metrics
            openapi = (await client.get("/openapi.json")).json()
            assert {"/v1/admin/accounts", "/v1/admin/accounts/import", "/v1/leads/{lead_id}"} <= set(openapi["paths"])
    finally:
        await infra.stop_service("enrichment")
