"""Failed authentication, counted per client address, so guessing tokens costs no queries.

Every bearer token that matches no active key counts against the address that sent it;
past the limit (LEDGER_FAILED_AUTH_LIMIT) that address gets 429 for the rest of the
window before the database is asked. Tokens that failed lately are remembered too, so a
misconfigured client repeating a revoked token costs one query a minute, not one a request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import DURATION_VALUES

from services.limit_settings import Rate


class FailedAuthentications:
    """Bearer tokens that matched no active key, counted per client address in fixed windows.

    Also remembers recently failed tokens, so a client that repeats a bad token costs no
    query. Both maps are bounded: past `max_entries` the oldest go first.
    """

    def __init__(
        self,
        rate: Rate | None,
        *,
        remember_seconds: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.remember_seconds = remember_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._bad: OrderedDict[str, float] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None while it is under the limit."""
        if self.rate is None:
            return None
        ends, count = self._windows.get(address, (0.0, 0))
        now = self.clock()
        if now >= ends or count < self.rate.requests:
            return None
        return max(1, round(ends - now))

    def failed(self, address: str, token_hash: str | None = None) -> None:
        now = self.clock()
        if self.rate is not None:
            ends, count = self._windows.pop(address, (0.0, 0))
            if now >= ends:
                ends, count = now + DURATION_VALUES[self.rate.unit], 0
            self._windows[address] = (ends, count + 1)
            _trim(self._windows, self.max_entries)
        if token_hash is not None:
            self._bad.pop(token_hash, None)
            self._bad[token_hash] = now + self.remember_seconds
            _trim(self._bad, self.max_entries)

    def known_bad(self, token_hash: str) -> bool:
        expires = self._bad.get(token_hash)
        if expires is None:
            return False
        if self.clock() >= expires:
            del self._bad[token_hash]
            return False
        return True

    def too_many(self, address: str) -> TooManyRequestsException | None:
        retry = self.retry_after(address)
        if retry is None:
            return None
        assert self.rate is not None
        return TooManyRequestsException(
            detail=f"more than {self.rate.requests} failed authentications per {self.rate.unit} "
            f"from this address; retry after {retry} s",
            headers={"Retry-After": str(retry)},
        )


def _trim(entries: OrderedDict[str, Any], most: int) -> None:
    while len(entries) > most:
        entries.popitem(last=False)
