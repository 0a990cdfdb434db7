"""Property-based: whatever schemathesis or hypothesis sends, capture never answers 5xx.

Capture runs under uvicorn in a thread (its own event loop) so the synchronous hypothesis
engine can drive it over real HTTP while the suite's loop stays free.
"""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow_capture.app import create_app
from leadflow_capture.settings import Settings
from leadflow_stack.apifuzz import fuzz_service, serving_in_thread
from leadflow_stack.testing import bearer, service_settings

pytestmark = pytest.mark.integration

ADMIN = bearer()


CASES_SENT = itertools.count()


def aim_at_a_real_form(case: schemathesis.Case) -> None:
    """Every other case with a form key goes to a form that exists, so the body is really parsed."""
    if "form_key" in (case.path_parameters or {}) and next(CASES_SENT) % 2:
        case.path_parameters["form_key"] = "fuzz"


async def test_schemathesis_finds_no_server_error_and_no_undocumented_body(capture_env):
    app_settings = service_settings(
        Settings, database_url=capture_env.database_url, bootstrap_servers=capture_env.bootstrap_servers,
        topic_prefix=capture_env.prefix, rate_limit_ip_per_minute=0, rate_limit_form_per_minute=0,
        rate_limit_activity_ip_per_minute=0, database_pool_size=4,
        # No other service runs here: a data-subject export then gathers capture's part alone.
        privacy_export_urls={},
    )
    with serving_in_thread(create_app(app_settings), "capture") as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            await client.post("/v1/admin/forms", headers=ADMIN,
                              json={"key": "fuzz", "name": "Fuzz", "allowed_origins": ["*"]})
        failures = await asyncio.to_thread(fuzz_service, base_url, ADMIN, prepare=aim_at_a_real_form)
    assert failures == [], "\n".join(failures)


CONTENT_TYPES = st.sampled_from([
    "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
    "multipart/form-data", "text/plain", "application/json; charset=latin-1", "", "application/merge-patch+json",
])
FIELD_NAMES = st.sampled_from(["email", "first_name", "company", "utm_source", "consent", "_hp", "_rendered_at",
                               "visitor_id", "landing_page", "message"]) | st.text(max_size=30)
FIELD_VALUES = st.one_of(st.text(max_size=300), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.booleans(), st.none(),
                         st.lists(st.text(max_size=10), max_size=3), st.dictionaries(st.text(max_size=5), st.text()))
JSON_BODIES = st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=12)


def fuzz_raw_bodies(base_url: str) -> list[str]:
    failures: list[str] = []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        client.post("/v1/admin/forms", headers=ADMIN, json={
            "key": "raw", "name": "Raw", "allowed_origins": ["*"], "consent_required": True,
            "consent_text": "ok", "consent_version": "1", "min_fill_seconds": 1})

        @settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(content_type=CONTENT_TYPES, body=st.binary(max_size=2000) | JSON_BODIES,
               accept=st.sampled_from(["application/json", "text/html", "*/*", ""]),
               origin=st.sampled_from([None, "https://x.example", "null", "::bad::"]))
        def check(content_type: str, body: bytes | dict[str, object], accept: str, origin: str | None) -> None:
            headers = {"Content-Type": content_type, "Accept": accept}
            if origin is not None:
                headers["Origin"] = origin
            if isinstance(body, dict):
                response = client.post("/v1/forms/raw/submissions", json=body, headers={"Accept": accept})
            else:
                response = client.post("/v1/forms/raw/submissions", content=body, headers=headers)
            if response.status_code >= 500:
                failures.append(f"{response.status_code} for {content_type!r} {body!r:.200}: {response.text[:200]}")
            activity = client.post("/v1/activities", content=body if isinstance(body, bytes) else b"{}",
                                   headers=headers)
            if activity.status_code >= 500:
                failures.append(f"activities {activity.status_code} for {body!r:.200}")

        check()
    return failures


async def test_random_bodies_never_cause_a_server_error(capture_env):
    app_settings = service_settings(
        Settings, database_url=capture_env.database_url, bootstrap_servers=capture_env.bootstrap_servers,
        topic_prefix=capture_env.prefix, rate_limit_ip_per_minute=0, rate_limit_form_per_minute=0,
        database_pool_size=4,
    )
    with serving_in_thread(create_app(app_settings), "capture") as base_url:
        failures = await asyncio.to_thread(fuzz_raw_bodies, base_url)
    assert failures == [], "\n".join(failures)
