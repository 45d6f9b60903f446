"""How much one caller may cost an API process, from the environment (docs/security.md).

Rate limits live in each process's memory: with `serve --workers N` a caller gets up to
N times the limit. The defaults are generous, for a tool on loopback; tighten them for
a server that faces the network.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Literal

import msgspec

Unit = Literal["second", "minute", "hour", "day"]
UNITS: tuple[Unit, ...] = ("second", "minute", "hour", "day")


class Rate(msgspec.Struct, frozen=True):
    """At most `requests` per `unit`, in fixed windows (Litestar's rate-limit middleware)."""

    requests: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.requests}/{self.unit}"


class LimitSettings(msgspec.Struct, frozen=True, kw_only=True):
    per_key: Rate | None = Rate(1000, "second")
    """Requests per API key; None turns the limit off."""
    per_address: Rate | None = Rate(2000, "second")
    """Requests per client address (authenticated or not); None turns the limit off."""
    failed_auth: Rate | None = Rate(30, "minute")
    """Bearer tokens per client address that no key matches; past it, 429 before the database."""
    max_waiters: int = 1000
    """Requests waiting for `min_position` at once; more get 503."""
    idempotency_retention: timedelta = timedelta(days=7)
    """How long an Idempotency-Key is remembered; a retry after that writes again."""
    metrics_token: str | None = None
    """When set, /metrics needs `Authorization: Bearer <token>`."""
    metrics_address: str = "127.0.0.1"
    metrics_port: int | None = None
    """When set, `serve` exposes /metrics on this port (and address) and the API's answers 404."""


def parse_rate(text: str) -> Rate | None:
    """`100/minute`, `5/second`…; `off` (or 0) means no limit."""
    cleaned = text.strip().lower()
    if cleaned in ("off", "0", "none"):
        return None
    count, _, unit = cleaned.partition("/")
    if not count.isascii() or not count.isdigit() or unit not in UNITS or int(count) < 1:
        raise ValueError(
            f"a rate is written like `100/minute` (units: {', '.join(UNITS)}) or `off`, "
            f"got {text!r}"
        )
    return Rate(int(count), unit)


def load_limit_settings(environ: dict[str, str] | None = None) -> LimitSettings:
    env = os.environ if environ is None else environ
    defaults = LimitSettings()

    def rate(name: str, default: Rate | None) -> Rate | None:
        value = env.get(name)
        return default if not value else parse_rate(value)

    def whole(name: str, default: int) -> int:
        value = env.get(name, "").strip()
        if not value:
            return default
        if not value.isascii() or not value.isdigit():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        return int(value)

    port = whole("LEDGER_METRICS_PORT", 0)
    return LimitSettings(
        per_key=rate("LEDGER_RATE_LIMIT_PER_KEY", defaults.per_key),
        per_address=rate("LEDGER_RATE_LIMIT_PER_ADDRESS", defaults.per_address),
        failed_auth=rate("LEDGER_FAILED_AUTH_LIMIT", defaults.failed_auth),
        max_waiters=whole("LEDGER_MAX_WAITERS", defaults.max_waiters),
        idempotency_retention=timedelta(hours=whole("LEDGER_IDEMPOTENCY_RETENTION_HOURS", 7 * 24)),
        metrics_token=env.get("LEDGER_METRICS_TOKEN") or None,
        metrics_address=env.get("LEDGER_METRICS_ADDRESS") or defaults.metrics_address,
        metrics_port=port or None,
    )
