"""Safe webhook targets: which URLs the ledger may POST to, checked before every connection.

A webhook makes the server send requests where an admin points it, so a URL to loopback,
a private network or a cloud metadata service would let a caller reach what only the
server can reach (SSRF). `check_url` refuses bad syntax; `resolve_target` resolves the
host and refuses when ANY address is not publicly routable, also where a public-looking
IPv6 address embeds a private IPv4 one. The dispatcher connects to the addresses checked
here, never resolving again, so a name cannot answer one address to the check and another
to the connection (DNS rebinding). Reasons name the class of address, never the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from domain.limits import MAX_URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = MAX_URL
RESOLVE_SECONDS = 5.0
ALLOW_PRIVATE_SETTING = "LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS"

_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT, not is_private
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class UnsafeTarget(ValueError):
    """A URL the ledger will not deliver to; `reason` is safe to show the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvedTarget(UnsafeTarget):
    """The host has no address (yet): at subscription a 4xx, at delivery a failed attempt."""


def check_url(url: str) -> str | None:
    """Why `url` cannot be a webhook target by its spelling alone, or None if it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"the URL is longer than {MAX_URL_LENGTH} characters"
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        return (
            "the URL must be printable ASCII without spaces (write an international "
            "domain name in its xn-- form and percent-encode the path)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the URL is malformed or its port is not a number from 1 to 65535"
    if parts.scheme.lower() not in ("http", "https"):
        return "the URL's scheme must be http or https"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "the URL must not hold a user name or password: the signature authenticates"
    if not parts.hostname:
        return "the URL has no host"
    if port == 0:
        return "the URL's port is not a number from 1 to 65535"
    return None


async def resolve_target(
    url: str, allow_private: bool, *, timeout: float = RESOLVE_SECONDS
) -> list[IPAddress]:
    """The addresses to connect to for `url`; raises UnsafeTarget when any is unsafe
    (unless `allow_private`) and UnresolvedTarget when the host has none."""
    if (reason := check_url(url)) is not None:
        raise UnsafeTarget(reason)
    parts = urlsplit(url)
    addresses = await _addresses(parts, timeout)
    if not allow_private:
        for address in addresses:
            if (kind := unsafe_kind(address)) is not None:
                raise UnsafeTarget(
                    f"the URL resolves to {kind}, and such targets are refused "
                    f"unless {ALLOW_PRIVATE_SETTING} is set"
                )
    return addresses


def default_port(url: str) -> int:
    """The TCP port a request to `url` goes to."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


async def _addresses(parts: SplitResult, timeout: float) -> list[IPAddress]:
    host = parts.hostname or ""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass  # a name, or an IPv4 spelling only the resolver reads (2130706433, 0x7f.1)
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, parts.port or 80, type=socket.SOCK_STREAM), timeout
        )
    except (OSError, UnicodeError, TimeoutError):
        raise UnresolvedTarget("the URL's host does not resolve") from None
    found: list[IPAddress] = []
    for _, _, _, _, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise UnresolvedTarget("the URL's host does not resolve")
    return found


def unsafe_kind(address: IPAddress) -> str | None:
    """The class of a non-public address ("a loopback address"), None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (kind := unsafe_kind(embedded)) is not None:
            return kind
        if address.ipv4_mapped is not None:
            return None  # judged by the IPv4 address it stands for
        if address in _UNIQUE_LOCAL:
            return "a unique-local address"
        if address in _NAT64_LOCAL:
            return "a private address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (such as a cloud metadata service)"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 address reaches."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
