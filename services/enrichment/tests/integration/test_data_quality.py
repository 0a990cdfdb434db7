"""The data-quality report and gauges through real Kafka and PostgreSQL: a few fills of two forms sent by hand
around a week boundary (Sunday 29 / Monday 30 November 2026, UTC), every figure checked against the fills."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from leadflow_contracts import Attribution, LeadCaptured, LeadContact, new_event
from leadflow_stack.testing import bearer, send_event

from .conftest import Enrichment, enrichment_settings, fake_provider, new_env, running

pytestmark = pytest.mark.integration

ADMIN = bearer()
SUNDAY = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
MONDAY = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)
WEEK_1, WEEK_2 = "2026-11-23T00:00:00+00:00", "2026-11-30T00:00:00+00:00"


async def fill(service: Enrichment, form: str, source: str | None, at: datetime, **contact: Any) -> str:
    lead_id = str(uuid.uuid4())
    data = LeadCaptured(lead_id=lead_id, form_key=form, submitted_at=at, contact=LeadContact(**contact),
                        attribution=Attribution(utm_source=source))
    await send_event(service.producer, new_event(data, source="capture", subject=lead_id, lead_captured_at=at),
                     topic_prefix=service.settings.topic_prefix)
    return lead_id


async def send_the_fills(service: Enrichment, demo: str, broken: str) -> None:
    sent = [
        # Week 1: a complete lead of a known account; a free address with a phone that is no number; a role
        # address whose company the provider does not know (an answer all the same).
        await fill(service, demo, "google", SUNDAY, email="ada@globex.com", first_name="Ada", last_name="Lovelace",
                   phone="+1 415 555 2671", company="Globex", country="US"),
        await fill(service, demo, "google", SUNDAY, email="bob@gmail.com", first_name="Bob", phone="12"),
        await fill(service, demo, None, SUNDAY, email="info@unknowncorp.io", company="Unknown Corp"),
        # Week 2, the broken form: an address that is none, a disposable one.
        await fill(service, broken, "linkedin", MONDAY, email="not-an-email", first_name="Eve"),
        await fill(service, broken, "linkedin", MONDAY, email="x@mailinator.com"),
    ]
    for lead_id in sent:
        await service.enriched(lead_id)
    # Week 2: Ada again (a duplicate, merged into her lead), once her first fill is in.
    await service.enriched(await fill(service, demo, "google", MONDAY, email="ADA@Globex.com", first_name="Ada"))


async def test_data_quality_by_form_and_week_and_by_source_with_csv_and_gauges(infra):
    env = await new_env(infra)
    demo, broken = f"demo-{uuid.uuid4().hex[:6]}", f"broken-{uuid.uuid4().hex[:6]}"
    async with fake_provider() as provider:
        settings = enrichment_settings(env, provider_url=provider.url, provider_retries=0,
                                       data_quality_window_seconds=3600 * 24 * 3650,
                                       data_quality_refresh_seconds=0.2)
        async with running(settings) as service:
            await send_the_fills(service, demo, broken)
            # The provider fails for the broken form's last fill: asked, no answer.
            provider.mode = "fail"
            await service.enriched(await fill(service, broken, "linkedin", MONDAY, email="eve@initech-eu.io"))

            window = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
            answer = await service.client.get("/v1/reports/data-quality", headers=ADMIN,
                                              params={**window, "group_by": "form", "interval": "week"})
            assert answer.status_code == 200, answer.text
            report = answer.json()
            rows = {(r["group"], r["bucket"]): r for r in report["rows"]}
            assert list(rows) == [(broken, WEEK_2), (demo, WEEK_1), (demo, WEEK_2)]
            check_by_form_and_week(rows[broken, WEEK_2], rows[demo, WEEK_1], rows[demo, WEEK_2])
            check_total(report["total"])

            csv_answer = await service.client.get("/v1/reports/data-quality", headers={**ADMIN, "Accept": "text/csv"},
                                                  params={**window, "group_by": "form", "interval": "week"})
            assert csv_answer.headers["content-type"].startswith("text/csv")
            check_csv_agrees(csv_answer.text, report)

            by_source = (await service.client.get("/v1/reports/data-quality", headers=ADMIN,
                                                  params={**window, "group_by": "source"})).json()
            assert [(r["group"], r["bucket"], r["fills"]) for r in by_source["rows"]] == [
                ("direct", None, 1), ("google", None, 3), ("linkedin", None, 3)]
            google = by_source["rows"][1]
            assert (google["duplicate_rate"], google["free_email_rate"], google["account_match_rate"]) == (
                0.3333, 0.3333, 0.6667)

            await check_gauges(service, demo, broken)


def check_by_form_and_week(broken: dict[str, Any], demo_1: dict[str, Any], demo_2: dict[str, Any]) -> None:
    assert broken["fills"] == 3 and broken["duplicates"] == 0
    assert (broken["invalid_email_rate"], broken["disposable_email_rate"], broken["free_email_rate"]) == (
        0.3333, 0.3333, 0.0)
    assert broken["account_match_rate"] == 0.0
    assert (broken["provider_lookups"], broken["provider_success_rate"]) == (1, 0.0)
    assert (broken["completeness"]["email"], broken["completeness"]["first_name"]) == (1.0, 0.3333)

    assert demo_1["fills"] == 3 and demo_1["duplicate_rate"] == 0.0
    assert (demo_1["free_email_rate"], demo_1["invalid_phone_rate"], demo_1["role_address_rate"]) == (
        0.3333, 0.3333, 0.3333)
    assert (demo_1["invalid_email_rate"], demo_1["disposable_email_rate"]) == (0.0, 0.0)
    assert demo_1["account_match_rate"] == 0.3333
    assert (demo_1["provider_lookups"], demo_1["provider_success_rate"]) == (1, 1.0)
    completeness = demo_1["completeness"]
    assert (completeness["email"], completeness["phone"], completeness["company"], completeness["country"],
            completeness["last_name"], completeness["job_title"]) == (1.0, 0.6667, 0.6667, 0.3333, 0.3333, 0.0)

    # The duplicate: counted in its own week, with what it gave (not what its lead holds).
    assert (demo_2["fills"], demo_2["duplicates"], demo_2["duplicate_rate"]) == (1, 1, 1.0)
    assert demo_2["account_match_rate"] == 1.0
    assert (demo_2["provider_lookups"], demo_2["provider_success_rate"]) == (0, None)
    assert (demo_2["completeness"]["first_name"], demo_2["completeness"]["phone"]) == (1.0, 0.0)


def check_total(total: dict[str, Any]) -> None:
    assert (total["group"], total["bucket"], total["fills"], total["duplicates"]) == ("(all)", None, 7, 1)
    assert total["duplicate_rate"] == round(1 / 7, 4)
    assert total["invalid_email_rate"] == round(1 / 7, 4)
    assert total["account_match_rate"] == round(2 / 7, 4)
    assert (total["provider_lookups"], total["provider_success_rate"]) == (2, 0.5)
    assert total["completeness"]["email"] == 1.0


def check_csv_agrees(text: str, report: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(report["rows"]) + 1
    for row, expected in zip(rows, [*report["rows"], report["total"]], strict=True):
        assert row["group"] == expected["group"]
        assert (datetime.fromisoformat(row["bucket"]) if row["bucket"] else None) == (
            datetime.fromisoformat(expected["bucket"]) if expected["bucket"] else None)
        assert int(row["fills"]) == expected["fills"] and int(row["duplicates"]) == expected["duplicates"]
        for name in ("duplicate_rate", "invalid_email_rate", "invalid_phone_rate", "free_email_rate",
                     "disposable_email_rate", "role_address_rate", "account_match_rate", "provider_success_rate"):
            assert (float(row[name]) if row[name] else None) == expected[name], name
        for name, share in expected["completeness"].items():
            assert float(row[f"completeness_{name}"]) == share, name


async def check_gauges(service: Enrichment, demo: str, broken: str) -> None:
    def value(text: str, metric: str, **labels: str) -> float | None:
        for line in text.splitlines():
            match = re.fullmatch(rf"{metric}\{{(.*)\}} (\S+)", line)
            if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
                return float(match.group(2))
        return None

    fills = "leadflow_enrichment_data_quality_fills"
    # The gauges are refreshed in the background: wait for a refresh that saw the last fill.
    for _ in range(300):
        metrics = (await service.client.get("/metrics")).text
        if value(metrics, fills, form=broken, source="linkedin") == 3:
            break
        await asyncio.sleep(0.1)
    assert value(metrics, fills, form=broken, source="linkedin") == 3
    assert value(metrics, fills, form=demo, source="google") == 3
    assert value(metrics, fills, form=demo, source="direct") == 1
    ratio = "leadflow_enrichment_data_quality_ratio"
    assert value(metrics, ratio, form=broken, source="linkedin", figure="invalid_email") == 0.3333
    assert value(metrics, ratio, form=broken, source="linkedin", figure="provider_success") == 0.0
    assert value(metrics, ratio, form=demo, source="google", figure="duplicate") == 0.3333
    assert value(metrics, ratio, form=demo, source="direct", figure="role_address") == 1.0
    # No fill of demo from google asked the provider: no series rather than a made-up rate.
    assert value(metrics, ratio, form=demo, source="google", figure="provider_success") is None
    assert value(metrics, "leadflow_enrichment_data_quality_completeness", form=demo, source="google",
                 field="phone") == 0.6667

