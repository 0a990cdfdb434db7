"""Tables as a running system has them: a million earlier leads in every service's database before
the measured steps, so that index depth, page cache misses and vacuum show in the figures.

The rows are written straight into each service's database, after the services have migrated it,
with one set-based statement per table (``INSERT ... SELECT FROM generate_series``): a lead's rows
as the service's own handlers would have left them (tables.py and store.py of each service), in a
finished state (routed, clocks stopped, scores current), so no poller or sweep picks them up.
They cannot meet the generated leads: their ids start with ``pf-`` (capture's are UUIDs) and their
emails end in ``@prefill.invalid`` (the generator's carry the run id and ``.example`` or a mail
provider's domain).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

ID = "'pf-' || g"
EMAIL = "'pf' || g || '@prefill.invalid'"
# Spread over the last ~30 days: one lead every 2.6 s for a million leads.
AT = "now() - make_interval(secs => (({n} - g) * 2600000.0 / {n})::float8)"
# One constant document (parsed once per statement, not built per row): a contact's size and shape.
CONTACT = ("'{\"email\": \"someone@prefill.invalid\", \"first_name\": \"Ada\", \"last_name\": \"Lovelace\", "
           "\"company\": \"Initech\", \"job_title\": \"VP Sales\", \"country\": \"US\", "
           "\"phone\": \"+1 415 555 0100\"}'::jsonb")


def _series(n: int, body: str) -> str:
    return body.format(id=ID, email=EMAIL, at=AT.format(n=n), contact=CONTACT) + \
        f" FROM generate_series(1, {n}) AS g"


def capture_sql(n: int) -> list[str]:
    return [_series(n, (
        "INSERT INTO lead (id, form_key, contact, custom_fields, attribution, submitted_at, email_normalized, "
        "ip, user_agent) SELECT {id}, 'demo', {contact}, '{{}}'::jsonb, "
        "'{{\"utm_source\": \"google\", \"utm_campaign\": \"brand\"}}'::jsonb, {at}, {email}, '10.0.0.1', "
        "'Mozilla/5.0 (X11; Linux x86_64) prefill'"
    ))]


def enrichment_sql(n: int) -> list[str]:
    return [
        _series(n, (
            "INSERT INTO lead (id, email, form_key, original, profile, quality, first_submitted_at, "
            "last_submitted_at, created_at, updated_at) SELECT {id}, {email}, 'demo', {contact}, "
            "{contact} || '{{\"industry\": \"Software\", \"employee_count\": 420}}'::jsonb, "
            "'{{\"score\": 0.8, \"problems\": []}}'::jsonb, {at}, {at}, {at}, {at}"
        )),
        _series(n, (
            "INSERT INTO lead_fill (captured_lead_id, lead_id, form_key, original, submitted_at, duplicate, "
            "enriched_at) SELECT {id}, {id}, 'demo', {contact}, {at}, false, {at}"
        )),
    ]


ACTIVE_MODEL = ("COALESCE((SELECT model_id FROM model_activation WHERE rolled_back_at IS NULL "
                "ORDER BY activated_at DESC LIMIT 1), 'default')")


def scoring_sql(n: int) -> list[str]:
    return [
        _series(n, (
            "INSERT INTO lead_score (lead_id, email, enriched, correlation_id, captured_at, score, fit_points, "
            "behavior_points, fit_grade, engagement_level, tier, is_mql, model_id, breakdown, lifecycle_stage, "
            "stage_changed_at, scored_at, created_at, updated_at) SELECT {id}, {email}, {contact}, {id}, {at}, "
            "40 + g % 50, 40 + g % 50, 0, 'B', 0, 'warm', false, (SELECT m FROM active), "
            "'{{\"fit\": [], \"behavior\": []}}'::jsonb, 'lead', {at}, {at}, {at}, {at}"
        )).replace("INSERT", f"WITH active AS (SELECT {ACTIVE_MODEL} AS m) INSERT", 1),
        _series(n, (
            "INSERT INTO score_change (lead_id, event_id, at, trigger, score, fit_grade, engagement_level, tier, "
            "is_mql, model_id, breakdown, lifecycle_stage) SELECT {id}, 'pf-ev-' || g, {at}, 'form', "
            "40 + g % 50, 'B', 0, 'warm', false, 'prefill', '{{}}'::jsonb, 'lead'"
        )),
        _series(n, "INSERT INTO lead_identity (kind, value, lead_id) SELECT 'email', {email}, {id}"),
        _series(n, "INSERT INTO lead_identity (kind, value, lead_id) SELECT 'lead', {id}, {id}"),
    ]


def routing_sql(n: int) -> list[str]:
    return [
        _series(n, (
            "INSERT INTO lead (id, data, correlation_id, lead_captured_at, status, owner_rep_id, team_id, "
            "last_assignment_id, routed_at, closed_at, created_at, updated_at) SELECT {id}, {contact}, {id}, {at}, "
            "'closed', 'pf-rep-' || g % 40, 'pf-team-' || g % 5, 'pf-as-' || g, {at}, {at}, {at}, {at}"
        )),
        _series(n, (
            "INSERT INTO assignment (id, lead_id, outcome, rep_id, team_id, reason, strategy, audit, event_id, "
            "created_at) SELECT 'pf-as-' || g, {id}, 'assigned', 'pf-rep-' || g % 40, 'pf-team-' || g % 5, "
            "'prefill: round robin', 'round_robin', '{{\"rules\": []}}'::jsonb, 'pf-ev-' || g, {at}"
        )),
    ]


def sla_sql(n: int) -> list[str]:
    return [
        _series(n, (
            "INSERT INTO lead (lead_id, captured_at, form_key, source, utm_campaign, tier, score, team_id, "
            "rep_id, stage_rank, first_routed_at, first_touch_at, speed_to_lead_seconds, sla_outcome, updated_at, "
            "email, full_name, company, queue) "
            "SELECT {id}, {at}, 'demo', 'google', 'brand', 'warm', 40 + g % 50, 'pf-team-' || g % 5, "
            "'pf-rep-' || g % 40, 3, {at}, {at}, 600, 'met', {at}, {email}, 'Ada Lovelace', "
            "'Company ' || g % 50000, CASE WHEN g % 50 = 0 THEN 'triage' END"
        )),
        # Four timeline rows per lead, as its captured, enriched, scored and routed events leave them.
        _series(n, (
            "INSERT INTO lead_event (lead_id, event_id, event_type, stage, source, at, lead_captured_at, details) "
            "SELECT {id}, 'pf-' || s.stage || '-' || g, 'lead.' || s.stage || '.v1', s.stage, 'prefill', {at}, "
            "{at}, '{{}}'::jsonb"
        )).replace(" AS g", " AS g CROSS JOIN unnest(ARRAY['captured', 'enriched', 'scored', 'routed']) AS s(stage)"),
        _series(n, (
            "INSERT INTO sla_clock (id, lead_id, routed_event_id, tier, team_id, owner_rep_id, correlation_id, "
            "lead_captured_at, target_seconds, warning_ratio, breach_limit, started_at, warning_at, due_at, "
            "status, stopped_at, stop_reason, created_at) SELECT 'pf-clock-' || g, {id}, 'pf-routed-' || g, "
            "'warm', 'pf-team-' || g % 5, 'pf-rep-' || g % 40, {id}, {at}, 3600, 0.8, 2, {at}, "
            "{at} + interval '48 minutes', {at} + interval '1 hour', 'stopped', {at} + interval '10 minutes', "
            "'touched', {at}"
        )),
    ]


BUILDERS = {"capture": capture_sql, "enrichment": enrichment_sql, "scoring": scoring_sql,
            "routing": routing_sql, "sla": sla_sql}


def statements(service: str, n: int) -> list[str]:
    builder = BUILDERS.get(service)
    return builder(n) if builder is not None and n > 0 else []


def tables_of(sql: list[str]) -> list[str]:
    """The tables a service's prefill writes, for the VACUUM ANALYZE after it."""
    found = []
    for statement in sql:
        table = statement.split("INSERT INTO ", 1)[1].split(" ", 1)[0]
        if table not in found:
            found.append(table)
    return found


async def _fill_one(service: str, dsn: str, n: int) -> dict[str, Any]:
    sql = statements(service, n)
    started = time.monotonic()
    try:
        conn = await asyncpg.connect(dsn, timeout=30)
    except (OSError, asyncpg.PostgresError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    try:
        for statement in sql:
            await conn.execute(statement, timeout=1800)
        inserted = time.monotonic() - started
        for table in tables_of(sql):
            # A long-lived table is vacuumed and analyzed: plans and the visibility map as in production.
            await conn.execute(f'VACUUM (ANALYZE) "{table}"', timeout=1800)
    except asyncpg.PostgresError as exc:
        # A service whose tables changed shape: measure without its prefill rather than not at all.
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": round(time.monotonic() - started, 1)}
    finally:
        await conn.close()
    return {"rows_per_lead": len(sql) + (3 if service == "sla" else 0), "insert_s": round(inserted, 1),
            "seconds": round(time.monotonic() - started, 1)}


async def prefill(dsns: dict[str, str], n: int) -> dict[str, Any]:
    """``n`` leads into every service's database (service -> asyncpg DSN); what it took, per service."""
    started = time.monotonic()
    # Two at a time: one per core, and PostgreSQL writes the WAL of both.
    gate = asyncio.Semaphore(2)

    async def one(service: str, dsn: str) -> tuple[str, dict[str, Any]]:
        async with gate:
            return service, await _fill_one(service, dsn, n)

    done = await asyncio.gather(*(one(service, dsn) for service, dsn in dsns.items() if service in BUILDERS))
    return {"leads": n, "seconds": round(time.monotonic() - started, 1), "services": dict(done)}
