"""The egress guard: which addresses a webhook may reach, checked when a URL is saved (on every
connection: test_guarded_session.py)."""

from __future__ import annotations

import ipaddress

import pytest

from leadflow_kit.egress import (
    EgressPolicy,
    address_class,
    destination_refusal,
    parse_networks,
    parse_url,
)
from leadflow_stack.testing import scripted_resolver

PUBLIC = ipaddress.ip_address("93.184.216.34")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "not globally routable"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("::ffff:169.254.169.254", "link-local (IPv4 169.254.169.254 inside IPv6)"),
        ("64:ff9b::a00:1", "private (IPv4 10.0.0.1 inside IPv6)"),
        ("2002:7f00:1::", "loopback (IPv4 127.0.0.1 inside IPv6)"),
    ],
)
def test_inside_addresses_are_refused(address: str, kind: str) -> None:
    assert address_class(ipaddress.ip_address(address)) == kind
    assert EgressPolicy().refusal(ipaddress.ip_address(address)) is not None


def test_public_addresses_pass_and_an_allow_list_admits_only_what_it_names() -> None:
    assert address_class(PUBLIC) is None and address_class(ipaddress.ip_address("2606:4700::1111")) is None
    local = EgressPolicy(allowed_networks=parse_networks("127.0.0.0/8, ::1"))
    assert local.refusal(ipaddress.ip_address("127.0.0.2")) is None
    assert local.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert local.refusal(ipaddress.ip_address("::1")) is None
    assert local.refusal(ipaddress.ip_address("10.0.0.1")) == "10.0.0.1 is a private address"
    assert local.refusal(ipaddress.ip_address("169.254.169.254")) is not None


@pytest.mark.parametrize("url", ["http://h:abc/", "ftp://crm.example.com/", "http:///x", "https://a b/",
                                 "https://user:pw@crm.example.com/", "http://h:99999/", "https://xn--/",
                                 "https://under_score.example.com/"])
def test_malformed_urls_are_value_errors(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


async def test_when_saved_a_url_is_refused_for_its_scheme_or_what_its_name_resolves_to() -> None:
    _, public = scripted_resolver([str(PUBLIC)])
    _, metadata = scripted_resolver(["169.254.169.254"])
    policy = EgressPolicy()
    assert await destination_refusal(parse_url("https://crm.example.com/h"), policy, public) is None
    assert await destination_refusal(parse_url("http://crm.example.com/h"), policy, public) == "must use https"
    development = EgressPolicy(allow_http=True)
    assert await destination_refusal(parse_url("http://crm.example.com/h"), development, public) is None
    refusal = await destination_refusal(parse_url("https://metadata.example.com/"), policy, metadata)
    assert refusal == "resolves to 169.254.169.254 is a link-local address"
    assert await destination_refusal(parse_url("https://[::1]/"), policy) == "::1 is a loopback address"
    # 127.0.0.1 spelled as a number
    assert await destination_refusal(parse_url("https://2130706433/"), policy) is not None
