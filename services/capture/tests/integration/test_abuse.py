"""Spam and floods: honeypot and too-fast fills are accepted silently and never forwarded;
per-IP and per-form rate limits answer 429 with Retry-After."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from leadflow_contracts import topics
from leadflow_kit.app import app_deps

pytestmark = pytest.mark.integration


async def stored(capture, form_key: str) -> int:
    async with app_deps(capture.app).platform.db.transaction() as session:
        return int((await session.execute(text("SELECT count(*) FROM lead WHERE form_key = :k"),
                                          {"k": form_key})).scalar_one())


async def test_honeypot_fill_looks_accepted_but_is_dropped(capture):
    form = await capture.create_form(honeypot_field="website_url")
    url = f"/v1/forms/{form['key']}/submissions"
    spam = await capture.client.post(url, json={"email": "bot@example.com", "website_url": "http://spam.example"})
    assert spam.status_code == 202
    assert spam.json()["lead_id"]
    browser_spam = await capture.client.post(
        url, content="email=bot2%40example.com&website_url=x",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert browser_spam.status_code == 303
    real = await capture.client.post(url, json={"email": "human@example.com", "website_url": ""})
    assert real.status_code == 202
    assert await stored(capture, form["key"]) == 1
    events = await capture.events(topics.CAPTURED, lambda evs: any(e.subject == real.json()["lead_id"] for e in evs))
    assert spam.json()["lead_id"] not in {e.subject for e in events}
    mine = [e for e in events if e.data.form_key == form["key"]]
    assert len(mine) == 1
    assert "website_url" not in mine[0].data.custom_fields


async def test_a_fill_faster_than_the_minimum_is_spam(capture):
    form = await capture.create_form(min_fill_seconds=3)
    url = f"/v1/forms/{form['key']}/submissions"
    now_ms = int(time.time() * 1000)
    fast = await capture.client.post(url, json={"email": "fast@example.com", "_rendered_at": now_ms - 500})
    slow = await capture.client.post(url, json={"email": "slow@example.com", "_rendered_at": now_ms - 10_000})
    no_stamp = await capture.client.post(url, json={"email": "api@example.com"})
    assert fast.status_code == slow.status_code == no_stamp.status_code == 202
    assert await stored(capture, form["key"]) == 2
    metrics = (await capture.client.get("/metrics")).text
    assert f'leadflow_submissions_total{{form="{form["key"]}",outcome="spam"}} 1.0' in metrics


async def test_per_ip_rate_limit_answers_429_with_retry_after(start_capture):
    async with start_capture(rate_limit_ip_per_minute=6, rate_limit_ip_burst=3) as capture:
        form = await capture.create_form()
        url = f"/v1/forms/{form['key']}/submissions"
        statuses = [(await capture.client.post(url, json={"email": f"r{i}@example.com"},
                                               headers={"Origin": "https://www.example.com"})) for i in range(4)]
        assert [r.status_code for r in statuses] == [202, 202, 202, 429]
        limited = statuses[-1]
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        assert limited.json()["errors"][0]["code"] == "rate_limited"
        assert limited.headers["access-control-allow-origin"] == "https://www.example.com"
        metrics = (await capture.client.get("/metrics")).text
        assert f'leadflow_submissions_total{{form="{form["key"]}",outcome="rate_limited"}} 1.0' in metrics


async def test_per_form_rate_limit_holds_across_addresses(start_capture):
    limits = {"rate_limit_form_per_minute": 60, "rate_limit_form_burst": 2, "trusted_proxies": ["203.0.113.7"]}
    async with start_capture(**limits) as capture:
        form = await capture.create_form()
        url = f"/v1/forms/{form['key']}/submissions"
        codes = [(await capture.client.post(url, json={"email": f"f{i}@example.com"},
                                            headers={"X-Forwarded-For": f"198.51.100.{i}"})).status_code
                 for i in range(3)]
        assert codes == [202, 202, 429]
        other = await capture.create_form()
        assert (await capture.client.post(f"/v1/forms/{other['key']}/submissions",
                                          json={"email": "o@example.com"})).status_code == 202


async def test_exempt_addresses_are_not_limited(start_capture):
    async with start_capture(rate_limit_ip_per_minute=1, rate_limit_ip_burst=1,
                             rate_limit_exempt_ips=["203.0.113.7"]) as capture:
        form = await capture.create_form()
        url = f"/v1/forms/{form['key']}/submissions"
        codes = {(await capture.client.post(url, json={"email": f"e{i}@example.com"})).status_code for i in range(3)}
        assert codes == {202}


async def test_activities_have_their_own_per_ip_budget(start_capture):
    async with start_capture(rate_limit_activity_ip_per_minute=60, rate_limit_activity_ip_burst=2,
                             rate_limit_ip_per_minute=60, rate_limit_ip_burst=1) as capture:
        codes = [(await capture.client.post("/v1/activities", json={"type": "page_view", "visitor_id": "v"}))
                 for _ in range(3)]
        assert [r.status_code for r in codes] == [202, 202, 429]
        assert codes[-1].headers["retry-after"] == "1"
        form = await capture.create_form()
        submitted = await capture.client.post(f"/v1/forms/{form['key']}/submissions", json={"email": "a@example.com"})
        assert submitted.status_code == 202
