"""Token buckets, content negotiation and activity keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from leadflow_capture import domain, web
from leadflow_capture.ratelimit import SubmissionLimiter, TokenBuckets
from leadflow_capture.settings import Settings
from leadflow_contracts import LeadActivity


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_its_rate():
    clock = FakeTime()
    buckets = TokenBuckets(rate_per_minute=60, burst=3, monotonic=clock)
    assert [buckets.take("ip") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("ip") == 1.0
    clock.now += 0.5
    assert buckets.take("ip") == 0.5
    clock.now += 0.5
    assert buckets.take("ip") == 0.0
    assert buckets.take("other") == 0.0


def test_buckets_forget_the_least_recently_used_keys():
    buckets = TokenBuckets(rate_per_minute=1, burst=1, max_keys=2, monotonic=FakeTime())
    buckets.take("a")
    buckets.take("b")
    buckets.take("c")
    assert buckets.take("a") == 0.0  # forgotten, so it starts full again


def test_a_zero_rate_disables_the_limit():
    buckets = TokenBuckets(rate_per_minute=0, burst=1)
    assert all(buckets.take("x") == 0.0 for _ in range(100))


def test_the_limiter_checks_ip_then_form_and_rounds_retry_after_up():
    clock = FakeTime()
    limiter = SubmissionLimiter(ip_per_minute=6, ip_burst=1, form_per_minute=60, form_burst=1,
                                exempt_ips=frozenset({"10.0.0.1"}), monotonic=clock)
    assert limiter.check("1.1.1.1", "f") == 0
    assert limiter.check("1.1.1.1", "g") == 10
    assert limiter.check("2.2.2.2", "f") == 1
    assert limiter.check("10.0.0.1", "g") == 0
    assert limiter.check("10.0.0.1", "g") == 1


def test_browsers_get_pages_and_scripts_get_json():
    assert web.prefers_html("text/html,application/xhtml+xml,*/*;q=0.8", "application/x-www-form-urlencoded")
    assert web.prefers_html("", "multipart/form-data")
    assert web.prefers_html("*/*", "application/x-www-form-urlencoded")
    assert not web.prefers_html("application/json", "application/x-www-form-urlencoded")
    assert not web.prefers_html("", "application/json")
    assert web.prefers_html("text/html", "application/json")
    assert not web.prefers_html("*/*", "multipart/form-data", requested_with="XMLHttpRequest")


def test_cors_headers_only_for_allowed_origins():
    assert web.cors_headers("https://a.example", ["https://a.example"])["Access-Control-Allow-Origin"] == \
        "https://a.example"
    assert "Access-Control-Allow-Origin" not in web.cors_headers("https://b.example", ["https://a.example"])
    assert web.cors_headers(None, ["*"]) == {}


def activity(**ids) -> LeadActivity:
    return LeadActivity(activity_id="a", activity_type="page_view", occurred_at=datetime.now(UTC), **ids)


def test_activities_are_keyed_by_lead_then_visitor_then_an_opaque_id_of_the_email():
    secret = b"s" * 32
    assert domain.activity_key(activity(lead_id="L", visitor_id="V", email="e@x.co"), secret) == "L"
    assert domain.activity_key(activity(visitor_id="V", email="e@x.co"), secret) == "V"
    key = domain.activity_key(activity(email="E@X.co"), secret)
    assert "e@x.co" not in key.lower() and key.startswith("person-")
    # One person, one key (and so one partition), however the address is typed; another secret, another key.
    assert domain.activity_key(activity(email=" e@x.CO "), secret) == key
    assert domain.activity_key(activity(email="f@x.co"), secret) != key
    assert domain.activity_key(activity(email="e@x.co"), b"t" * 32) != key


def test_a_production_capture_needs_its_own_person_key_secret():
    with pytest.raises(ValidationError):
        Settings(environment="production")
    with pytest.raises(ValidationError):
        Settings(environment="production", person_key_secret="too-short")
    Settings(environment="production", person_key_secret="k" * 32, public_base_url="https://capture.example.com")


PROXIES = web.parse_networks(["10.0.0.0/8", "192.0.2.1"])


def test_without_a_trusted_proxy_the_forwarded_header_counts_for_nothing():
    assert web.client_address("203.0.113.5", ["1.2.3.4"], ()) == "203.0.113.5"
    assert web.client_address("203.0.113.5", ["1.2.3.4"], PROXIES) == "203.0.113.5"
    assert web.client_address(None, ["1.2.3.4"], PROXIES) is None


def test_behind_trusted_proxies_the_rightmost_untrusted_entry_counts():
    # The client wrote "6.6.6.6"; the first proxy appended the address it saw, 198.51.100.9.
    assert web.client_address("10.0.0.2", ["6.6.6.6, 198.51.100.9"], PROXIES) == "198.51.100.9"
    assert web.client_address("10.0.0.2", ["6.6.6.6, 198.51.100.9, 10.1.2.3", "192.0.2.1"],
                              PROXIES) == "198.51.100.9"
    assert web.client_address("192.0.2.1", ["garbage, 198.51.100.9"], PROXIES) == "198.51.100.9"
    assert web.client_address("10.0.0.2", ["::ffff:1.2.3.4,2001:db8::1"], PROXIES) == "2001:db8::1"


def test_a_proxied_request_without_an_untrusted_hop_counts_as_the_farthest_one():
    assert web.client_address("10.0.0.2", [], PROXIES) == "10.0.0.2"
    assert web.client_address("10.0.0.2", ["10.9.9.9, 10.0.0.1"], PROXIES) == "10.9.9.9"
    assert web.client_address("10.0.0.2", [" , "], PROXIES) == "10.0.0.2"


def test_take_each_stops_at_the_first_refusal():
    clock = FakeTime()
    buckets = TokenBuckets(rate_per_minute=60, burst=2, monotonic=clock)
    assert buckets.take_each(["lead:a", "email:b"]) == 0
    assert buckets.take_each(["lead:a", "lead:a", "email:b"]) == 1
    # Refused at the second lead:a, so email:b still holds its second token.
    assert buckets.take_each(["email:b"]) == 0
    assert buckets.take_each(["email:b"]) == 1
    assert TokenBuckets(rate_per_minute=0, burst=1).take_each(["x"] * 5) == 0
