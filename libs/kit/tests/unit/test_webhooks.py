"""Webhook signing (checked against the ``standardwebhooks`` reference library), the retry policy and
the dispatcher's wiring."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from leadflow_kit.platform import Platform
from leadflow_kit.settings import ServiceSettings
from leadflow_kit.webhooks import (
    AttemptOutcome,
    WebhookMetrics,
    WebhookSettings,
    active_secrets,
    new_secret,
    new_webhook_id,
    next_step,
    parse_retry_after,
    signed_headers,
    subscription_patterns,
    webhook_dispatcher,
    webhook_payload,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SCHEDULE = [1.0, 10.0, 100.0]


def test_signed_headers_verify_with_the_reference_library() -> None:
    secret = new_secret()
    now = datetime.now(UTC)
    body = webhook_payload("lead.routed", {"lead_id": "l-1"}, now)
    headers = signed_headers([secret], "msg_1", now, body)
    assert Webhook(secret).verify(body, headers)["data"] == {"lead_id": "l-1"}
    assert json.loads(body)["type"] == "lead.routed"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("l-1", "l-2"), headers)


def _as_json_dumps_wrote(event_type: str, data: dict[str, Any], now: datetime) -> str:
    """What ``webhook_payload`` wrote before it used orjson."""
    body = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    return json.dumps(body, separators=(",", ":"), default=str)


@dataclass
class _Point:
    x: int


PAYLOAD_VALUES: list[Any] = [
    "plain", "Zoë Müller-Łukasiewicz", "東京", "emoji 🚀", "tab\tand\nnewline", "quote \" and \\", "\x00\x1f",
    "\u2028", 0, -1, 2**63 - 1, -(2**63), 72.5, 0.1, 1e16, 5e-07, -0.0, 1.7976931348623157e308, True, False, None,
    [], {}, [1, "a", None], {"nested": {"deeper": [1.5, {"x": "y"}]}}, ("tu", "ple"),
    datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=UTC), datetime(2026, 12, 8, 1, 2, 3),
    date(2026, 12, 8), time(1, 2, 3), Decimal("12.3400"), uuid.UUID(int=7), _Point(3), {1, 2} - {2}, b"raw",
]


@pytest.mark.parametrize("value", PAYLOAD_VALUES, ids=[repr(v)[:30] for v in PAYLOAD_VALUES])
def test_a_payload_says_what_json_dumps_said(value: Any) -> None:
    now = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)
    body = webhook_payload("lead.routed", {"lead_id": "l-1", "value": value}, now)
    assert json.loads(body) == json.loads(_as_json_dumps_wrote("lead.routed", {"lead_id": "l-1", "value": value}, now))
    # Signed as what is sent: UTF-8.
    secret = new_secret()
    headers = signed_headers([secret], "msg_1", datetime.now(UTC), body)
    assert Webhook(secret).verify(body.encode(), headers)["data"]["lead_id"] == "l-1"


@pytest.mark.parametrize("value", [2**64, "\ud800 lone", {1: "int key"}], ids=["big int", "surrogate", "int key"])
def test_what_orjson_refuses_is_written_by_the_standard_library(value: Any) -> None:
    now = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)
    assert webhook_payload("lead.routed", {"value": value}, now) == _as_json_dumps_wrote(
        "lead.routed", {"value": value}, now)


def test_during_rotation_both_secrets_sign_and_either_verifies() -> None:
    old, new = new_secret(), new_secret()
    now = datetime.now(UTC)
    signing = active_secrets(new, old, now + timedelta(hours=1), now)
    body = webhook_payload("lead.routed", {"lead_id": "l-1"}, now)
    headers = signed_headers(signing, "msg_2", now, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, headers) and Webhook(new).verify(body, headers)
    assert active_secrets(new, old, now - timedelta(seconds=1), now) == [new]


def test_ids_and_secrets_have_the_spec_shape() -> None:
    assert "." not in new_webhook_id()
    secret = new_secret()
    assert secret.startswith("whsec_") and len(Webhook(secret)._whsecret) == 32


def test_2xx_delivers_and_410_holds_and_disables() -> None:
    assert next_step(AttemptOutcome(204, None), 1, NOW, SCHEDULE).status == "delivered"
    gone = next_step(AttemptOutcome(410, "gone"), 1, NOW, SCHEDULE)
    assert gone.status == "held" and gone.disable_subscription


def test_failures_back_off_exponentially_with_jitter_then_die() -> None:
    rng = random.Random(7)
    delays = []
    for attempt in (1, 2, 3):
        step = next_step(AttemptOutcome(500, "boom"), attempt, NOW, SCHEDULE, jitter_ratio=0.2, rng=rng)
        assert step.status == "pending" and step.next_attempt_at is not None
        delays.append((step.next_attempt_at - NOW).total_seconds())
    for delay, base in zip(delays, SCHEDULE, strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert next_step(AttemptOutcome(None, "timeout"), 4, NOW, SCHEDULE).status == "dead"


def test_retry_after_is_honoured_on_throttling() -> None:
    step = next_step(AttemptOutcome(429, "slow down", retry_after=42.0), 1, NOW, SCHEDULE)
    assert step.next_attempt_at == NOW + timedelta(seconds=42)
    capped = next_step(AttemptOutcome(503, "x", retry_after=10**9), 1, NOW, SCHEDULE, max_retry_after=60)
    assert capped.next_attempt_at == NOW + timedelta(seconds=60)
    # A Retry-After on a plain 500 is not a throttle: the schedule applies.
    plain = next_step(AttemptOutcome(500, "x", retry_after=42.0), 1, NOW, SCHEDULE, jitter_ratio=0)
    assert plain.next_attempt_at == NOW + timedelta(seconds=1)


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("3", NOW) == 3.0
    assert parse_retry_after("Mon, 23 Nov 2026 10:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("garbage", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_a_base_delay_turns_the_schedule_into_doubling_steps() -> None:
    settings = WebhookSettings(webhook_retry_base_seconds=0.5, webhook_retry_schedule_seconds=[9, 9, 9, 9])
    assert settings.webhook_retry_schedule() == [0.5, 1.0, 2.0, 4.0]


def test_the_default_schedule_starts_fast_and_backs_off_over_about_three_days() -> None:
    schedule = WebhookSettings().webhook_retry_schedule()
    assert schedule[:6] == [1.0, 5.0, 15.0, 60.0, 300.0, 1800.0]
    assert schedule == sorted(schedule)
    assert 3 * 86400 <= sum(schedule) <= 3.5 * 86400


def test_a_subscription_may_name_the_type_a_parent_wildcard_or_everything() -> None:
    assert subscription_patterns("lead.sla.breach") == ["lead.sla.breach", "lead.sla.*", "lead.*", "*"]
    assert subscription_patterns("ping") == ["ping", "*"]


def test_a_retry_is_logged_and_counted_as_failed_and_a_final_outcome_as_itself() -> None:
    labels = [next_step(AttemptOutcome(code, None), 1, NOW, SCHEDULE).label for code in (500, 204, 410)]
    assert labels == ["failed", "delivered", "held"]
    assert next_step(AttemptOutcome(500, None), len(SCHEDULE) + 1, NOW, SCHEDULE).label == "dead"


def test_the_dispatcher_is_built_from_a_platform_whose_settings_send_webhooks() -> None:
    platform = Platform.build(WebhookSettings(environment="test"))
    background = webhook_dispatcher(platform, WebhookMetrics(platform.metrics.registry))
    assert background.name == "webhook-dispatcher"
    with pytest.raises(TypeError, match="not WebhookSettings"):
        webhook_dispatcher(Platform.build(ServiceSettings(environment="test")), WebhookMetrics(CollectorRegistry()))
