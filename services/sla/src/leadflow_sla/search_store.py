"""The SQL of finding a lead: one statement per page, as plain SQL on the session's asyncpg connection
(a search answers in milliseconds; SQLAlchemy's statement building would be a good part of that)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow_kit.db import driver_connection
from leadflow_sla.search import FILTER_COLUMNS, UNSCORED, FoundLead, LeadQuery
from leadflow_sla.tables import SEARCHABLE

_COLUMNS = """
lead_id, email, full_name, company, stage_rank, tier, score, rep_id, team_id, queue, source, utm_campaign,
form_key, captured_at, sla_outcome, breach_count,
EXISTS (SELECT 1 FROM sla_clock WHERE sla_clock.lead_id = lead.lead_id AND sla_clock.status = 'open')
    AS clock_running
"""


def search_statement(query: LeadQuery) -> tuple[str, list[Any]]:
    """The page's statement and its arguments. Each condition is written as its index is (tables.py), so
    the planner reads the page off the filter's index or the sort's, in order, and stops at the limit."""
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    conditions = [SEARCHABLE]
    for name, value in query.filters.items():
        conditions.append(f"{FILTER_COLUMNS[name]} = {arg(value)}")
    if query.captured_from is not None:
        conditions.append(f"captured_at >= {arg(query.captured_from)}")
    if query.captured_to is not None:
        conditions.append(f"captured_at < {arg(query.captured_to)}")
    key = f"coalesce(score, {UNSCORED})" if query.by_score else "captured_at"
    direction, beyond = ("DESC", "<") if query.descending else ("ASC", ">")
    if query.after is not None:
        after_key, after_id = query.after
        conditions.append(f"({key}, lead_id) {beyond} ({arg(after_key)}, {arg(after_id)})")
    # The limit is written out (an int, checked by the route): a generic plan would guess a parameter's
    # limit as a tenth of the table, and sort the lot rather than read an index in order.
    statement = (f"SELECT {_COLUMNS} FROM lead WHERE {' AND '.join(conditions)} "
                 f"ORDER BY {key} {direction}, lead_id {direction} LIMIT {int(query.limit)}")
    return statement, args


async def search_leads(session: AsyncSession, query: LeadQuery) -> list[FoundLead]:
    statement, args = search_statement(query)
    conn = await driver_connection(session)
    return [FoundLead(**dict(row)) for row in await conn.fetch(statement, *args)]
