"""Bearer API keys on the HTTP API: `guards=[require("write")]` on a controller or handler.

Successful authentications are cached in each process for CACHE_SECONDS, so a hot
endpoint does not query the database on every request. The price: a revoked key keeps
working for at most that long in a server that saw it just before the revocation.
Failed ones are counted per client address (`failed_auth`), so guessing costs no queries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import SecurityRequirement, SecurityScheme
from psycopg_pool import AsyncConnectionPool

from services import keys
from services.api.failed_auth import FailedAuthentications
from services.keys import ApiKey

CACHE_SECONDS = 5.0
CHALLENGE = 'Bearer realm="community-ledger"'

SECURITY_SCHEME_NAME = "bearerAuth"
BEARER_SECURITY = SecurityScheme(
    type="http",
    scheme="bearer",
    bearer_format="cl_<43 url-safe characters>",
    description="An API key from `community-ledger keys create`, sent as "
    "`Authorization: Bearer cl_…`. Scopes nest: admin includes write, write includes read.",
)
SECURITY: list[SecurityRequirement] = [{SECURITY_SCHEME_NAME: []}]
"""For `security=` on controllers and handlers that carry a `require(…)` guard."""
ADMIN_SECURITY: list[SecurityRequirement] = [{SECURITY_SCHEME_NAME: ["admin"]}]
"""For irreversible operations: the scope names the role a key must hold (OpenAPI 3.1)."""

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]


class KeyCache:
    """Recently authenticated keys by token hash (failures are remembered by `failed_auth`)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._keys: dict[str, tuple[ApiKey, float]] = {}

    def get(self, token_hash: str) -> ApiKey | None:
        key, expires = self._keys.get(token_hash, (None, 0.0))
        if key is not None and self.clock() >= expires:
            del self._keys[token_hash]
            return None
        return key

    def put(self, token_hash: str, key: ApiKey) -> None:
        self._keys[token_hash] = (key, self.clock() + self.ttl)

    def clear(self) -> None:
        self._keys.clear()


CACHE = KeyCache(CACHE_SECONDS)


def require(scope: keys.Scope) -> Guard:
    """A guard admitting requests whose bearer key is active and holds `scope` or a wider one."""
    keys.allows(scope, scope)  # an unknown scope fails here, when the route is declared

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        key = await authenticated_key(connection)
        ensure_scope(key, scope)
        connection.state["api_key"] = key

    guard.__name__ = f"require_{scope}"
    return guard


def ensure_scope(key: ApiKey, scope: keys.Scope, what: str = "this operation") -> None:
    """403 unless `key` holds `scope`: for checks a route guard cannot make (a batch's items).

    The detail names the scopes and the key's prefix, never the key's name: a name may be
    a person's.
    """
    if keys.allows(key.scope, scope):
        return
    wide_enough = " or ".join(held for held in keys.SCOPES if keys.allows(held, scope))
    raise PermissionDeniedException(
        detail=f"{what} needs an API key with scope {wide_enough}; the key "
        f"{keys.MARKER}{key.prefix} has scope {key.scope}",
        headers={"WWW-Authenticate": f'{CHALLENGE}, error="insufficient_scope", scope="{scope}"'},
    )


def request_key(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    """The key a `require(…)` guard admitted this request with."""
    key: ApiKey = connection.state["api_key"]
    return key


async def authenticated_key(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    """The active key the request bears; 401 when there is none."""
    header = connection.headers.get("authorization")
    if not header:
        raise _unauthorized(
            "this operation needs an API key: send `Authorization: Bearer "
            "<token>` (`community-ledger keys create` makes one)"
        )
    token = bearer_token(header)
    if token is None:
        raise _unauthorized(
            "the Authorization header must read `Bearer <token>`, with a token "
            "from `community-ledger keys create`"
        )
    token_hash = keys.token_hash(token)
    key = CACHE.get(token_hash)
    if key is None:
        key = await _look_up(connection, token, token_hash)
        CACHE.put(token_hash, key)
    return key


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _look_up(
    connection: ASGIConnection[Any, Any, Any, Any], token: str, token_hash: str
) -> ApiKey:
    """The key from the database, unless this address has failed too often (429 first)."""
    failures: FailedAuthentications | None = getattr(connection.app.state, "failed_auth", None)
    address = connection.client.host if connection.client else "unknown"
    if failures is not None:
        if (too_many := failures.too_many(address)) is not None:
            raise too_many
        if failures.known_bad(token_hash):
            failures.failed(address)
            raise _invalid()
    pool: AsyncConnectionPool = connection.app.state.pool
    async with pool.connection() as conn:
        key = await keys.authenticate(conn, token)
    if key is None:
        if failures is not None:
            failures.failed(address, token_hash)
        raise _invalid()
    return key


def _invalid() -> NotAuthorizedException:
    return _unauthorized(
        "the API key is not valid: it is unknown or has been revoked", error="invalid_token"
    )


def _unauthorized(detail: str, error: str | None = None) -> NotAuthorizedException:
    challenge = f'{CHALLENGE}, error="{error}"' if error else CHALLENGE
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": challenge})
