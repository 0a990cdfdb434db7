"""Group commit against the real database: concurrent fills share a transaction and each gets its own
answer (dedupe and idempotent replays within the group included); a refused fill in a group sends the
others one by one, and they are still stored. Activity posts are grouped the same way."""

from __future__ import annotations

import asyncio
import re
import uuid
from contextlib import ExitStack
from typing import Any

import pytest

from leadflow_capture.bootstrap import Deps, bootstrap
from leadflow_capture.domain import FormDefinition, Limits
from leadflow_capture.handlers import (
    FormFill,
    InvalidSubmission,
    Outcome,
    SubmissionContext,
    capture_form_fill,
    capture_form_fills,
)
from leadflow_contracts import topics
from leadflow_kit.db import driver_connection
from leadflow_kit.uow import unit_of_work
from leadflow_stack.testing import counting_statements

from .conftest import capture_settings

pytestmark = pytest.mark.integration


def group_sizes(metrics: str) -> tuple[int, int]:
    """(groups committed, of which alone) from capture's /metrics."""
    count = re.search(r"^leadflow_capture_group_size_count (\S+)$", metrics, re.M)
    alone = re.search(r'^leadflow_capture_group_size_bucket\{le="1.0"\} (\S+)$', metrics, re.M)
    assert count is not None and alone is not None, metrics
    return int(float(count.group(1))), int(float(alone.group(1)))


async def test_concurrent_fills_are_committed_together_and_each_gets_its_own_answer(start_capture):
    # A wide window, so the fills of one gather surely meet (the default is 1.5 ms).
    async with start_capture(submission_group_window_ms=50) as capture:
        form = await capture.create_form(honeypot_field="website_url")
        url = f"/v1/forms/{form['key']}/submissions"
        run = uuid.uuid4().hex[:8]
        key = {"Idempotency-Key": f"group-{run}"}
        answers = await asyncio.gather(
            *(capture.client.post(url, json={"email": f"p{n}-{run}@example.com"}) for n in range(6)),
            capture.client.post(url, json={"email": f"twice-{run}@example.com"}),
            capture.client.post(url, json={"email": f"twice-{run}@example.com"}),
            capture.client.post(url, json={"email": f"keyed-{run}@example.com"}, headers=key),
            capture.client.post(url, json={"email": f"keyed-{run}@example.com"}, headers=key),
            capture.client.post(url, json={"email": f"bot-{run}@example.com", "website_url": "x"}),
        )

        assert [a.status_code for a in answers] == [202] * 11, [a.text for a in answers]
        ids = [a.json()["lead_id"] for a in answers]
        assert len(set(ids[:6])) == 6
        assert ids[6] == ids[7], "a double submit in one group is one lead"
        assert ids[8] == ids[9], "a retried Idempotency-Key in one group gets the first answer"
        assert [a.headers.get("idempotency-replayed") for a in answers[8:10]].count("true") == 1
        groups, alone = group_sizes((await capture.client.get("/metrics")).text)
        assert groups < 11 and alone < groups, "the fills were committed in groups"

        stored = set(ids[:7] + ids[8:9])
        published = await capture.events(
            topics.CAPTURED, lambda evs: stored <= {e.subject for e in evs})
        assert ids[10] not in {e.subject for e in published}, "the honeypot fill is dropped"
        mine = [e.subject for e in published if e.subject in stored]
        assert sorted(mine) == sorted(stored), "each stored lead is published once"


async def test_a_refused_fill_in_a_group_leaves_the_others_stored(start_capture):
    async with start_capture(submission_group_window_ms=50) as capture:
        form = await capture.create_form(required_fields=["email", "company"])
        url = f"/v1/forms/{form['key']}/submissions"
        run = uuid.uuid4().hex[:8]
        answers = await asyncio.gather(
            capture.client.post(url, json={"email": f"a-{run}@example.com", "company": "A"}),
            capture.client.post(url, json={"email": f"b-{run}@example.com"}),
            capture.client.post(url, json={"email": f"c-{run}@example.com", "company": "C"}),
        )

        assert [a.status_code for a in answers] == [202, 422, 202], [a.text for a in answers]
        assert answers[1].json()["errors"][0]["field"] == "company"
        stored = {answers[0].json()["lead_id"], answers[2].json()["lead_id"]}
        published = await capture.events(topics.CAPTURED, lambda evs: stored <= {e.subject for e in evs})
        assert sorted(e.subject for e in published if e.subject in stored) == sorted(stored)


async def test_concurrent_activity_posts_are_committed_together_and_each_id_is_announced_once(start_capture):
    async with start_capture(submission_group_window_ms=50) as capture:
        run = uuid.uuid4().hex[:8]
        retried = {"type": "page_view", "visitor_id": f"v-{run}", "activity_id": f"again-{run}"}
        answers = await asyncio.gather(
            *(capture.client.post("/v1/activities", json={"type": "page_view", "visitor_id": f"v{n}-{run}"})
              for n in range(6)),
            capture.client.post("/v1/activities", json=retried),
            capture.client.post("/v1/activities", json=retried),
            capture.client.post("/v1/activities", json=[{"type": "page_view", "visitor_id": f"v-{run}",
                                                         "properties": {"blob": "x" * 70_000}}]),
        )

        assert [a.status_code for a in answers] == [202] * 8 + [422], [a.text for a in answers]
        assert answers[8].json()["errors"][0]["field"] == "activities.0"
        ids = [a.json()["activity_id"] for a in answers[:8]]
        assert ids[6] == ids[7] == f"again-{run}" and len(set(ids)) == 7
        metrics = (await capture.client.get("/metrics")).text
        count = re.search(r"^leadflow_capture_activity_group_size_count (\S+)$", metrics, re.M)
        assert count is not None and float(count.group(1)) < 8, "the posts were committed in groups"

        published = await capture.events(topics.ACTIVITY, lambda evs: set(ids) <= {e.id for e in evs})
        assert sorted(e.id for e in published if e.id in ids) == sorted(set(ids)), "each activity announced once"


async def test_a_group_is_stored_in_two_statements_however_many_fills_it_holds(capture_env):
    """Eight fills of one form in one transaction (as a group commits them), the form remembered from an earlier
    request, one of them repeating another's email: one statement takes every email's lock and reads the form,
    one looks up earlier fills of the emails and inserts the leads that repeat none; at the commit one more
    writes the events. The form row itself is never locked."""
    settings = capture_settings(capture_env.database_url, capture_env.bootstrap_servers, capture_env.prefix)
    deps = bootstrap(settings)
    try:
        async with unit_of_work(deps.platform, deps) as uow:
            form = await deps.store.current_form(uow.session, "demo")
        assert form is not None
        run = uuid.uuid4().hex[:8]
        emails = [f"p{n}-{run}@example.com" for n in range(7)] + [f"P0-{run}@example.com"]
        fills = [FormFill(form, {"email": email}, form_confirmed=False) for email in emails]
        with ExitStack() as counting:
            async with unit_of_work(deps.platform, deps) as uow:
                statements = counting.enter_context(counting_statements(await driver_connection(uow.session)))
                answers = await capture_form_fills(fills, uow)
                await asyncio.sleep(0)  # asyncpg tells its query loggers with call_soon
                in_handler = list(statements)
            await asyncio.sleep(0)
    finally:
        await deps.platform.db.dispose()
        await deps.platform.pipeline_db.dispose()

    assert [a.kind for a in answers if isinstance(a, Outcome)] == ["accepted"] * 7 + ["duplicate"]
    assert isinstance(answers[7], Outcome) and isinstance(answers[0], Outcome)
    assert answers[7].lead_id == answers[0].lead_id
    assert len(in_handler) == 2, in_handler
    assert "pg_advisory_xact_lock" in in_handler[0] and "JOIN form" in in_handler[0]
    assert "INSERT INTO lead" in in_handler[1]
    assert [s for s in statements if "INSERT INTO outbox" in s] == [statements[2]], statements
    assert not any("FOR UPDATE" in s or "FOR SHARE" in s for s in statements)


async def stored_fills(deps: Deps, lead_ids: set[str]) -> tuple[list[tuple[str, str | None, str]], list[str]]:
    """The leads (form, email, contact) and the outbox's events (by subject, in order) of ``lead_ids``."""
    async with unit_of_work(deps.platform, deps) as uow:
        conn = await driver_connection(uow.session)
        leads = await conn.fetch("SELECT id, form_key, email_normalized, contact::text FROM lead "
                                 "WHERE id = ANY($1::text[])", list(lead_ids))
        events = await conn.fetch("SELECT key FROM outbox WHERE key = ANY($1::text[]) ORDER BY id", list(lead_ids))
    return sorted((r["form_key"], r["email_normalized"], r["contact"]) for r in leads), [r["key"] for r in events]


def mixed_fills(form: FormDefinition, run: str) -> list[FormFill]:
    """New fills, a repeat within them and of a stored fill, spam, a refused one, one too large for an event."""
    roomy = SubmissionContext(limits=Limits(max_field_length=10_000))
    posted: list[dict[str, str]] = [
        {"email": f"ada-{run}@example.com"},
        {"email": f"stored-{run}@example.com"},
        {"email": f" ADA-{run}@example.com", "company": "Engines"},
        {"email": f"bot-{run}@example.com", "_hp": "filled"},
        {"first_name": "no email"},
        {"email": f"huge-{run}@example.com", **{f"note_{i}": "x" * 9_000 for i in range(8)}},
        {"email": f"grace-{run}@example.com"},
        {"email": f"ada-{run}@example.com"},
    ]
    return [FormFill(form, fields, roomy, form_confirmed=False) for fields in posted]


def positions(answers: list[Any], stored_ids: dict[str, str]) -> list[tuple[str, Any]]:
    made = {a.lead_id: n for n, a in enumerate(answers) if isinstance(a, Outcome) and a.kind == "accepted"}
    return [(a.kind, made.get(a.lead_id, stored_ids.get(a.lead_id, ""))) if isinstance(a, Outcome)
            else (type(a).__name__, [e.code for e in a.errors]) for a in answers]


async def test_a_group_stores_exactly_what_its_fills_stored_one_by_one(capture_env):
    settings = capture_settings(capture_env.database_url, capture_env.bootstrap_servers, capture_env.prefix)
    deps = bootstrap(settings)
    results = []
    try:
        async with unit_of_work(deps.platform, deps) as uow:
            form = await deps.store.current_form(uow.session, "demo")
        assert form is not None
        for together in (False, True):
            run = uuid.uuid4().hex[:8]
            async with unit_of_work(deps.platform, deps) as uow:
                earlier = await capture_form_fill(FormFill(form, {"email": f"stored-{run}@example.com"}), uow)
            assert isinstance(earlier, Outcome)
            fills = mixed_fills(form, run)
            answers: list[Any] = []
            if together:
                async with unit_of_work(deps.platform, deps) as uow:
                    answers = list(await capture_form_fills(fills, uow))
            else:
                for fill in fills:
                    try:
                        async with unit_of_work(deps.platform, deps) as uow:
                            answers.append(await capture_form_fill(fill, uow))
                    except InvalidSubmission as refused:
                        answers.append(refused)
            ids = {a.lead_id for a in answers if isinstance(a, Outcome) and a.kind == "accepted"}
            leads, events = await stored_fills(deps, ids)
            made = {a.lead_id: n for n, a in enumerate(answers) if isinstance(a, Outcome) and a.kind == "accepted"}
            results.append((positions(answers, {earlier.lead_id: "stored"}),
                            [(form_key, (email or "").replace(run, "RUN"), contact.replace(run, "RUN"))
                             for form_key, email, contact in leads],
                            [made[subject] for subject in events]))
    finally:
        await deps.platform.db.dispose()
        await deps.platform.pipeline_db.dispose()

    one_by_one, together = results
    assert together == one_by_one
    assert [kind for kind, _ in together[0]] == ["accepted", "duplicate", "duplicate", "spam", "InvalidSubmission",
                                                 "InvalidSubmission", "accepted", "duplicate"]
    assert together[0][2] == together[0][7] == ("duplicate", 0) and together[0][1] == ("duplicate", "stored")
    assert together[2] == [0, 6]
