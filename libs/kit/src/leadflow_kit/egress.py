"""Outgoing HTTP to URLs that outsiders chose (webhook subscriptions) cannot reach inside.

``EgressPolicy`` says which addresses a request may go to: public unicast only, unless a network is
allow-listed explicitly (development and the test suite allow their local receivers on 127.0.0.1).
``destination_refusal`` applies it when a URL is saved; ``guarded_session`` applies it again on every connection:
it resolves the host itself, refuses when any address is forbidden, connects only to the addresses it
checked and checks each again as it connects, so a name that resolves elsewhere by the time of sending
(DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp
import certifi
import httpx
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class ForbiddenDestination(OSError):
    """The URL's host is, or resolves to, an address the policy refuses (loopback, private, ...)."""

    def __init__(self, reason: str) -> None:
        # With an errno, aiohttp's connection errors show the reason (their text is the strerror).
        super().__init__(errno.EACCES, reason)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_class(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast destination (``"loopback"``, ...), or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = address_class(embedded)
            if inner is not None:
                return f"{inner} (IPv4 {embedded} inside IPv6)"
    for label, flagged in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ):
        if flagged:
            return label
    return None


@dataclass(frozen=True)
class EgressPolicy:
    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to ``address`` is refused, or None."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        if any(a in n for a in candidates for n in self.allowed_networks if a.version == n.version):
            return None
        kind = address_class(address)
        return None if kind is None else f"{address} is a {kind} address"

    def scheme_refusal(self, scheme: str) -> str | None:
        if scheme == "https" or (scheme == "http" and self.allow_http):
            return None
        return "must use https" if scheme == "http" else "must be an https URL"


def parse_networks(value: Iterable[str] | str) -> tuple[IPNetwork, ...]:
    """``"127.0.0.0/8, ::1"`` or a list of the same; a bare address is a one-address network."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def parse_url(value: str) -> httpx.URL:
    """An absolute http(s) URL with a well-formed host and port; ValueError says what is wrong."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("must be an absolute http(s) URL")
    if not url.host:
        raise ValueError("has no host")
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError("has a port outside 1-65535")
    if url.userinfo:
        raise ValueError("may not carry a user name or password")
    if literal_address(url.host) is None:
        labels = url.host.rstrip(".").split(".")
        if not all(_HOST_LABEL.fullmatch(label) for label in labels) or len(url.host) > 253:
            raise ValueError("has a host that is neither an IP address nor a DNS name")
    return url


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, as the operating system's resolver answers."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                        proto=socket.IPPROTO_TCP)
    found: list[IPAddress] = []
    for info in infos:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"); the address is what matters.
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


async def destination_refusal(
    url: httpx.URL, policy: EgressPolicy, resolver: Resolver = system_resolver, timeout: float = 3.0
) -> str | None:
    """Why sending to ``url`` would be refused, checked as a subscription is saved. A name that does
    not resolve (yet) is not refused here: every send resolves and checks again."""
    scheme = policy.scheme_refusal(url.scheme)
    if scheme is not None:
        return scheme
    try:
        async with asyncio.timeout(timeout):
            addresses = await resolver(url.host, url.port or (443 if url.scheme == "https" else 80))
    except (OSError, TimeoutError, UnicodeError):
        return None
    for address in addresses:
        refusal = policy.refusal(address)
        if refusal is not None:
            return f"resolves to {refusal}" if literal_address(url.host) is None else refusal
    return None


class GuardedResolver(AbstractResolver):
    """Resolves a name once and refuses it whole when any of its addresses is forbidden; the session
    connects to the addresses it answered (cached for a few seconds, already checked)."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolver = resolver

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        try:
            addresses = await self.resolver(host, port)
        except UnicodeError as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise OSError(f"{host} resolves to no address")
        refusals = [r for r in (self.policy.refusal(a) for a in addresses) if r is not None]
        if refusals:
            raise ForbiddenDestination(f"refused to connect to {host}: {refusals[0]}")
        return [ResolveResult(hostname=host, host=str(a), port=port, proto=0, flags=socket.AI_NUMERICHOST,
                              family=socket.AF_INET6 if a.version == 6 else socket.AF_INET)
                for a in addresses]

    async def close(self) -> None:
        return None


def guarded_socket(policy: EgressPolicy) -> Callable[[AddrInfoType], socket.socket]:
    """The session's socket factory: the last check, on the very address about to be connected (a
    literal IP in the URL never passes through the resolver)."""

    def open_socket(addr_info: AddrInfoType) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        refusal = policy.refusal(address)
        if refusal is not None:
            raise ForbiddenDestination(f"refused to connect to {address}: {refusal}")
        return socket.socket(family, kind, proto)

    return open_socket


def guarded_session(policy: EgressPolicy, resolver: Resolver = system_resolver, *, connections: int = 100,
                    ssl_context: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
    """The HTTP client of webhooks and notifications (aiohttp: about a seventh of httpx's CPU a request,
    its parser in C). Every connection passes the policy twice, at the name (``GuardedResolver``) and at
    the address (``guarded_socket``); no proxy from the environment (it would connect on our behalf,
    past the check), no redirect is followed by callers (``allow_redirects=False``), a compressed answer
    is neither asked for nor unpacked, and callers bound each exchange with their own deadline."""
    context = ssl_context or ssl.create_default_context(cafile=certifi.where())
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy, resolver),
                                     socket_factory=guarded_socket(policy), ssl=context, limit=connections)
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False,
                                 skip_auto_headers=("Accept-Encoding",),
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=None))
