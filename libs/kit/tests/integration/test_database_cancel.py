"""A transaction cancelled part-way (a stop cancels the background loops wherever they are; a client that
goes away cancels its request) leaves no pooled connection behind that loses later transactions' writes."""

import asyncio
from typing import Any

import asyncpg
import pytest

from leadflow_kit.db import PIPELINE_PLANNING, Database, asyncpg_dsn, driver_connection

pytestmark = pytest.mark.integration

ROUNDS = 60


async def test_writes_after_transactions_cancelled_at_any_point_are_all_committed(infra: Any) -> None:
    """Found in CI: the webhook dispatcher, cancelled at a stop during a transaction's BEGIN, gave a cut-off
    send back in its wind-down ("released 1"), and the row was still leased afterwards. asyncpg kept the
    cancelled BEGIN as the connection's transaction, SQLAlchemy none, so the next transaction on that
    connection ran as a savepoint inside a BEGIN nobody committed: reported done, lost at close."""
    url = await infra.new_database("kit_cancel")
    db = Database(url, pool_size=1, planning=PIPELINE_PLANNING)
    async with db.autocommit() as conn:
        await conn.execute("CREATE TABLE written (n int PRIMARY KEY)")
    cancelled_while_starting = 0

    async def transactions() -> None:
        # A loop of short transactions on the hot paths' connection (the dispatcher's rounds, a consumer's batches).
        nonlocal cancelled_while_starting
        while True:
            async with db.transaction() as session:
                try:
                    conn = await driver_connection(session)
                except asyncio.CancelledError:
                    cancelled_while_starting += 1
                    raise
                await conn.fetchval("SELECT 1")

    try:
        for n in range(ROUNDS):
            loop = asyncio.create_task(transactions())
            # Staggered, so the cancels land across every step of a transaction: checkout, BEGIN, query, COMMIT.
            await asyncio.sleep(0.005 + n * 0.0003)
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            async with db.transaction() as session:
                status = await (await driver_connection(session)).execute("INSERT INTO written VALUES ($1)", n)
            assert status == "INSERT 0 1"
    finally:
        await db.dispose()  # closes every pooled connection: what an open BEGIN held is rolled back here

    assert cancelled_while_starting > 0, "no cancel landed while a transaction started; the test proved nothing"
    raw = await asyncpg.connect(asyncpg_dsn(url))
    try:
        written = [row["n"] for row in await raw.fetch("SELECT n FROM written ORDER BY n")]
    finally:
        await raw.close()
    assert written == list(range(ROUNDS))
