"""One delivery attempt over HTTP: to the address checked, signed, never redirected.

The target is resolved and checked (`targets.resolve_target`) before the connection, and
the request goes to that address, not to the name: the Host header and the TLS server
name keep the URL's host, so a name cannot answer one address to the check and another
to the connection. Each subscription keeps its connection to its target (scheme, host,
port) alive between deliveries; a connection verified for one host name is never reused
for another that happens to share its address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Hashable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import msgspec

from services.webhooks.targets import IPAddress, UnsafeTarget, resolve_target

RESOLVED_SECONDS = 10.0
"""How long a checked resolution is reused: connections only ever go to checked addresses."""
MAX_ANSWER_BYTES = 64 * 1024
"""Read at most this much of an answer; a longer one costs its connection, nothing more."""
USER_AGENT = "community-ledger-webhooks/1"


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt came to; `error` is safe to store and show (no URL, no payload)."""

    outcome: str
    """delivered, http_error, redirect, timeout, connection_error or refused (its metric label)."""
    status_code: int | None
    duration_ms: float
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


class Sender:
    """Delivers to every target of a dispatcher, one connection pool per target."""

    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._pools: dict[tuple[Hashable, str, str, int], httpcore.AsyncConnectionPool] = {}
        self._timeouts = {name: timeout for name in ("connect", "read", "write", "pool")}
        self._resolved: dict[str, tuple[float, list[IPAddress]]] = {}

    async def send(
        self,
        owner: Hashable,
        url: str,
        headers: dict[str, str],
        body: bytes,
        *,
        within: float | None = None,
    ) -> Outcome:
        """POST `body` to `url` on `owner`'s connection (one subscription's deliveries go
        one at a time); `within` caps the attempt below the timeout (a lease ending)."""
        limit = self.timeout if within is None else max(0.0, min(self.timeout, within))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit):
                status = await self._post(owner, url, headers, body)
        except UnsafeTarget as refused:
            return _outcome("refused", started, error=f"refused target: {refused.reason}")
        except (TimeoutError, httpcore.TimeoutException):
            return _outcome("timeout", started, error=f"no answer within {limit:g} s")
        except (
            httpcore.NetworkError,
            httpcore.ProtocolError,
            httpcore.UnsupportedProtocol,
            OSError,
        ) as error:
            return _outcome("connection_error", started, error=_connection_error(error))
        if 200 <= status < 300:
            return _outcome("delivered", started, status=status)
        if 300 <= status < 400:
            return _outcome(
                "redirect", started, status=status, error=f"redirect not followed (HTTP {status})"
            )
        return _outcome("http_error", started, status=status, error=f"HTTP {status}")

    async def _post(self, owner: Hashable, url: str, headers: dict[str, str], body: bytes) -> int:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        address = (await self._addresses(url))[0]
        literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
        pinned = parts._replace(netloc=f"{literal}:{port}").geturl()
        extensions: dict[str, Any] = {"timeout": self._timeouts}
        if scheme == "https":
            extensions["sni_hostname"] = host
        fields = [
            *headers.items(),
            ("host", parts.netloc),
            ("user-agent", USER_AGENT),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ]
        pool = self._pool((owner, scheme, host.lower(), port))
        async with pool.stream(
            "POST", pinned, headers=fields, content=body, extensions=extensions
        ) as response:
            read = 0
            async for chunk in response.aiter_stream():
                read += len(chunk)
                if read > MAX_ANSWER_BYTES:
                    break
        return response.status

    async def _addresses(self, url: str) -> list[IPAddress]:
        now = time.monotonic()
        cached = self._resolved.get(url)
        if cached is not None and now - cached[0] < RESOLVED_SECONDS:
            return cached[1]
        addresses = await resolve_target(url, self.allow_private)
        self._resolved[url] = (now, addresses)
        return addresses

    def _pool(self, key: tuple[Hashable, str, str, int]) -> httpcore.AsyncConnectionPool:
        if (pool := self._pools.get(key)) is None:
            # httpcore, httpx's own transport, without httpx's layer above it: that layer
            # doubled the processor time of a delivery. It never follows redirects, and
            # never goes through a proxy: the request reaches the address checked, only it.
            # One connection per subscription and target: its deliveries take turns anyway,
            # and a pool shared by many spends its time looking for an idle connection.
            pool = httpcore.AsyncConnectionPool(max_connections=1, max_keepalive_connections=1)
            self._pools[key] = pool
        return pool

    async def forget(self, owner: Hashable) -> None:
        """Close `owner`'s connections (a subscription no longer delivered here)."""
        for key in [key for key in self._pools if key[0] == owner]:
            await self._pools.pop(key).aclose()

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()


def _outcome(
    outcome: str, started: float, *, status: int | None = None, error: str | None = None
) -> Outcome:
    return Outcome(
        outcome=outcome,
        status_code=status,
        duration_ms=(time.perf_counter() - started) * 1000,
        error=error,
    )


def _connection_error(error: BaseException) -> str:
    """The kind of failure, never its message: messages may quote the URL."""
    if isinstance(error, httpcore.ConnectError | ConnectionRefusedError):
        return "could not connect (ConnectError)"
    if isinstance(error, httpcore.RemoteProtocolError):
        return "the connection closed without a complete answer (RemoteProtocolError)"
    return f"the connection failed ({type(error).__name__})"
