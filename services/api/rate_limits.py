"""Rate limits: per client address, per API key, and on failed authentication (429).

The first two are Litestar's rate-limit middleware over a memory store, so each limit
holds per process: with `serve --workers N` a caller gets up to N times it. The middleware
runs before authentication, so a request counts against its API key only when the token
is one this process recently authenticated (`auth.CACHE`, a few seconds): an unknown
token counts against its address alone, and a stream of made-up tokens cannot fill the
memory with windows of its own. Failed authentication is counted per address by
`failed_auth.FailedAuthentications`, which answers 429 before the database is asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware
from litestar.types import Receive, Scope, Send

from services import keys
from services.api import auth
from services.limit_settings import LimitSettings, Rate

EXEMPT = [r"^/(health|ready|metrics)$"]
"""Probes and scrapes are never limited: an orchestrator must see a busy server as alive."""

STORES = ("rate_limit_address", "rate_limit_key")
WHOSE = {STORES[0]: "from this address", STORES[1]: "with this API key"}


class RetryingRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's middleware, answering its 429 with Retry-After and a detail that says why."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        if not await self.should_check_request(request=request):
            await self.app(scope, receive, send)
            return
        store = self.config.get_store_from_app(app)
        key = self.cache_key_from_request(request)
        async with self._lock:
            window = await self.retrieve_cached_history(key, store)
            if len(window.history) >= self.max_requests:
                headers = self.create_response_headers(cache_object=window)
                retry = max(1, int(headers[self.config.rate_limit_reset_header_key]))
                raise TooManyRequestsException(
                    detail=f"more than {self.max_requests} requests per {self.unit} "
                    f"{WHOSE[self.config.store]}; retry after {retry} s",
                    headers={**headers, "Retry-After": str(retry)},
                )
            await self.set_cached_history(key=key, cache_object=window, store=store)
        if self.config.set_rate_limit_headers:
            send = self.create_send_wrapper(send=send, cache_object=window)
        await self.app(scope, receive, send)


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def _known_key(request: Request[Any, Any, Any]) -> str | None:
    token = auth.bearer_token(request.headers.get("authorization"))
    key = auth.CACHE.get(keys.token_hash(token)) if token else None
    return str(key.key_id) if key is not None else None


def _config(rate: Rate, store: str, identify: Callable[[Request[Any, Any, Any]], str]) -> Any:
    return RateLimitConfig(
        rate_limit=(rate.unit, rate.requests),
        exclude=EXEMPT,
        identifier_for_request=identify,
        middleware_class=RetryingRateLimitMiddleware,
        store=store,
        # The RateLimit-* headers go on 429s (with Retry-After) only: on every answer
        # they would tell each caller the shape of everyone's limit for no gain.
        set_rate_limit_headers=False,
    )


def rate_limit_middleware(limits: LimitSettings) -> list[DefineMiddleware]:
    """The address limit first (it sees every request), then the key limit."""
    middleware = []
    if limits.per_address is not None:
        config = _config(limits.per_address, STORES[0], lambda r: "address:" + client_address(r))
        middleware.append(config.middleware)
    if limits.per_key is not None:
        config = _config(limits.per_key, STORES[1], lambda r: "key:" + (_known_key(r) or ""))
        config.check_throttle_handler = _bears_known_key
        middleware.append(config.middleware)
    return middleware


async def _bears_known_key(request: Request[Any, Any, Any]) -> bool:
    return _known_key(request) is not None
