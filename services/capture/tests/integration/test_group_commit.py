"""Group commit against the real database: concurrent fills share a transaction and each gets its own
answer (dedupe and idempotent replays within the group included); a refused fill in a group sends the
others one by one, and they are still stored."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from leadflow_capture.bootstrap import bootstrap
from leadflow_capture.handlers import FormFill, Outcome, capture_form_fill
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


async def test_a_group_reads_each_form_once_and_locks_only_each_fill_s_email(capture_env):
    """Eight fills of one form in one transaction (as a group commits them), the form remembered from an
    earlier request: one statement reads the form with the first fill's lock, then each fill takes its
    email's lock and stores its lead (two statements); the form row itself is never locked."""
    settings = capture_settings(capture_env.database_url, capture_env.bootstrap_servers, capture_env.prefix)
    deps = bootstrap(settings)
    try:
        async with unit_of_work(deps.platform, deps) as uow:
            form = await deps.store.current_form(uow.session, "demo")
        assert form is not None
        run = uuid.uuid4().hex[:8]
        fills = [FormFill(form, {"email": f"p{n}-{run}@example.com"}, form_confirmed=False) for n in range(8)]
        async with unit_of_work(deps.platform, deps) as uow:
            with counting_statements(await driver_connection(uow.session)) as statements:
                outcomes = [await capture_form_fill(fill, uow) for fill in fills]
    finally:
        await deps.platform.db.dispose()

    assert [o.kind for o in outcomes if isinstance(o, Outcome)] == ["accepted"] * 8
    assert len(statements) == 2 * len(fills), statements
    assert sum("FROM form" in s for s in statements) == 1
    assert not any("FOR UPDATE" in s or "FOR SHARE" in s for s in statements)
