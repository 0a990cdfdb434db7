"""The egress guard: which addresses a webhook may reach, checked when a URL is saved and on every
connection (a fake resolver plays a DNS server that changes its answer)."""

from __future__ import annotations

import ipaddress

import httpcore
import httpx
import pytest

from leadflow_kit.egress import (
    EgressPolicy,
    ForbiddenDestination,
    GuardedBackend,
    IPAddress,
    Resolver,
    address_class,
    destination_refusal,
    guarded_client,
    parse_networks,
    parse_url,
)

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


def _resolver(*answers: list[str]) -> tuple[list[str], Resolver]:
    asked: list[str] = []
    queue = list(answers)

    async def resolve(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address(a) for a in (queue.pop(0) if len(queue) > 1 else queue[0])]

    return asked, resolve


async def test_when_saved_a_url_is_refused_for_its_scheme_or_what_its_name_resolves_to() -> None:
    _, public = _resolver([str(PUBLIC)])
    _, metadata = _resolver(["169.254.169.254"])
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


class _Recorder(httpcore.AsyncMockBackend):
    def __init__(self) -> None:
        super().__init__([b"HTTP/1.1 204 No Content\r\n\r\n"])
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: object, **kwargs: object) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        return await super().connect_tcp(host, port)


async def test_at_send_time_the_name_is_resolved_again_and_only_the_checked_address_is_connected() -> None:
    # DNS rebinding: public when the URL was saved, loopback when the webhook is sent.
    asked, rebinding = _resolver([str(PUBLIC)], ["127.0.0.1"])
    inner = _Recorder()
    backend = GuardedBackend(EgressPolicy(), rebinding, inner)
    assert await destination_refusal(parse_url("https://crm.example.com/"), EgressPolicy(), rebinding) is None
    with pytest.raises(ForbiddenDestination, match=r"127\.0\.0\.1 is a loopback address"):
        await backend.connect_tcp("crm.example.com", 443)
    assert asked == ["crm.example.com", "crm.example.com"] and inner.connected == []

    _, public = _resolver([str(PUBLIC)])
    allowed = GuardedBackend(EgressPolicy(), public, inner)
    await allowed.connect_tcp("crm.example.com", 443)
    assert inner.connected == [str(PUBLIC)]  # the address that was checked, not the name again


async def test_a_name_with_any_forbidden_address_is_refused_whole() -> None:
    _, mixed = _resolver([str(PUBLIC), "10.0.0.5"])
    with pytest.raises(ForbiddenDestination, match=r"10\.0\.0\.5"):
        await GuardedBackend(EgressPolicy(), mixed, _Recorder()).connect_tcp("crm.example.com", 443)


async def test_the_guarded_client_refuses_loopback_without_sending() -> None:
    async with guarded_client(EgressPolicy(allow_http=True)) as client:
        with pytest.raises(httpx.ConnectError, match="loopback"):
            await client.post("http://localhost:9/hook", content=b"{}")
