"""The console's SQL: users, sessions, and its keys on the five services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult, Row
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_console.tables import service_key_table, session_table, user_table
from leadflow_kit.db import Database

users = user_table.c
sessions = session_table.c
service_keys = service_key_table.c
# pg_advisory_xact_lock's key for provisioning: two console pods starting together mint one key, not two.
SERVICE_KEY_LOCK = 0x1EADF10C


async def insert_user(db: Database, **values: Any) -> None:
    async with db.transaction() as session:
        await session.execute(user_table.insert().values(**values))


async def user_by_username(db: Database, username: str) -> Row[Any] | None:
    async with db.transaction() as session:
        return (await session.execute(select(user_table).where(users.username == username))).first()


async def user_by_id(db: Database, user_id: str) -> Row[Any] | None:
    async with db.transaction() as session:
        return (await session.execute(select(user_table).where(users.id == user_id))).first()


async def list_users(db: Database) -> Sequence[Row[Any]]:
    async with db.transaction() as session:
        return (await session.execute(select(user_table).order_by(users.username))).all()


async def count_active_admins(db: Database) -> int:
    async with db.transaction() as session:
        return int((await session.execute(
            select(func.count()).where(users.role == "admin", users.disabled_at.is_(None)))).scalar_one())


async def update_user(db: Database, user_id: str, **values: Any) -> bool:
    async with db.transaction() as session:
        result = cast(CursorResult[Any], await session.execute(
            update(user_table).where(users.id == user_id).values(**values)))
        return bool(result.rowcount)


async def record_failed_sign_in(db: Database, user_id: str, max_failures: int, lock_until: datetime) -> int:
    """Count one more failure in a row; the one that reaches ``max_failures`` locks the account until
    ``lock_until`` and starts the count again. Returns the count after this failure."""
    async with db.transaction() as session:
        failures = int((await session.execute(
            update(user_table).where(users.id == user_id)
            .values(failed_sign_ins=users.failed_sign_ins + 1).returning(users.failed_sign_ins))).scalar_one())
        if failures >= max_failures:
            await session.execute(update(user_table).where(users.id == user_id)
                                  .values(failed_sign_ins=0, locked_until=lock_until))
        return failures


async def insert_session(db: Database, token_hash: str, user_id: str, expires_at: datetime) -> None:
    async with db.transaction() as session:
        await session.execute(session_table.insert().values(token_hash=token_hash, user_id=user_id,
                                                            expires_at=expires_at))


async def session_user(db: Database, token_hash: str, now: datetime) -> Row[Any] | None:
    """The signed-in user of an unexpired session (disabled users included: the caller decides)."""
    async with db.transaction() as session:
        return (await session.execute(
            select(user_table).join(session_table, sessions.user_id == users.id)
            .where(sessions.token_hash == token_hash, sessions.expires_at > now))).first()


async def delete_session(db: Database, token_hash: str) -> None:
    async with db.transaction() as session:
        await session.execute(delete(session_table).where(sessions.token_hash == token_hash))


async def delete_user_sessions(db: Database, user_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(delete(session_table).where(sessions.user_id == user_id))


async def delete_expired_sessions(db: Database, now: datetime) -> int:
    async with db.transaction() as session:
        result = cast(CursorResult[Any], await session.execute(delete(session_table).where(sessions.expires_at <= now)))
        return int(result.rowcount or 0)


@asynccontextmanager
async def service_keys_locked(db: Database) -> AsyncIterator[AsyncSession]:
    """One transaction holding the provisioning lock until it ends."""
    async with db.transaction() as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SERVICE_KEY_LOCK})
        yield session


async def service_key_rows(session: AsyncSession) -> Sequence[Row[Any]]:
    return (await session.execute(select(service_key_table))).all()


async def save_service_key(session: AsyncSession, service: str, key_id: str, encrypted_key: str,
                           scopes: Sequence[str]) -> None:
    """Keep a newly minted key (replacing the service's previous one)."""
    values = {"key_id": key_id, "encrypted_key": encrypted_key, "scopes": list(scopes), "minted_at": func.now()}
    await session.execute(insert(service_key_table).values(service=service, **values)
                          .on_conflict_do_update(index_elements=[service_keys.service], set_=values))


async def reencrypt_service_key(session: AsyncSession, service: str, encrypted_key: str) -> None:
    await session.execute(update(service_key_table).where(service_keys.service == service)
                          .values(encrypted_key=encrypted_key))


async def service_key_map(db: Database) -> dict[str, str]:
    """{service: encrypted key} of every kept key."""
    async with db.transaction() as session:
        rows = (await session.execute(select(service_keys.service, service_keys.encrypted_key))).all()
    return {row.service: row.encrypted_key for row in rows}
