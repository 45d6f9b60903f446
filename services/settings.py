"""Configuration from the environment, read once per process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import msgspec

DEFAULT_DATA_DIR = ".ledger"
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
"""5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: close to the Standard Webhooks recommendation."""
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class SettingsError(ValueError):
    """The environment asks for something this version cannot do; the message says what to set."""


class Roles(msgspec.Struct, frozen=True, kw_only=True):
    """The two restricted roles `db upgrade` creates or checks, and grants (docs/security.md).

    The owner is whoever runs `db upgrade`. Passwords are used only to create a role that
    does not exist yet; they never appear in a log or a message.
    """

    api: str
    projector: str
    api_password: str | None = None
    projector_password: str | None = None

    def __repr__(self) -> str:
        return f"Roles(api={self.api!r}, projector={self.projector!r})"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None
    """An external PostgreSQL; None means the embedded one under `data_dir`."""
    data_dir: Path
    roles: Roles | None = None
    """The API's and the projector's roles; None while everything runs as one user."""
    webhooks_allow_private_targets: bool = False
    """Let webhooks reach loopback and private addresses (tests, one machine; docs/security.md)."""
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    """Seconds to wait before each retry of a failed delivery; after the last, disabled."""
    webhook_timeout_seconds: float = 10.0
    """How long one delivery attempt may take, connecting included."""
    webhook_lease_seconds: float = 10.0
    """How long a dead dispatcher's subscriptions wait before another dispatcher takes them."""

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        data_dir=Path(env.get("LEDGER_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve(),
        roles=_roles(env),
        webhooks_allow_private_targets=_flag(env, "LEDGER_WEBHOOKS_ALLOW_PRIVATE_TARGETS"),
        webhook_retry_schedule=_durations(env, "LEDGER_WEBHOOK_RETRY_SCHEDULE")
        or DEFAULT_RETRY_SCHEDULE,
        webhook_timeout_seconds=_seconds(env, "LEDGER_WEBHOOK_TIMEOUT_SECONDS", 10.0),
        webhook_lease_seconds=_seconds(env, "LEDGER_WEBHOOK_LEASE_SECONDS", 10.0),
    )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false")


def _durations(env: Mapping[str, str], name: str) -> tuple[float, ...]:
    """A comma-separated list like `5s,5m,30m,2h` (units ms, s, m, h; a bare number is s)."""
    text = (env.get(name) or "").strip()
    if not text:
        return ()
    durations = []
    for item in text.split(","):
        item = item.strip().lower()
        unit = next((u for u in ("ms", "s", "m", "h") if item.endswith(u)), "")
        try:
            value = float(item[: len(item) - len(unit)]) * _UNITS.get(unit, 1.0)
        except ValueError:
            value = -1.0
        if not value >= 0 or value == float("inf"):
            raise SettingsError(
                f"{name} must list durations such as 5s,5m,30m,2h (units ms, s, m, h)"
            )
        durations.append(value)
    return tuple(durations)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be a number of seconds above 0")
    return value


def _roles(env: Mapping[str, str]) -> Roles | None:
    if env.get("LEDGER_APP_ROLE"):
        # One role for both processes could write the read models from the API and
        # the ledger's bookkeeping from the projector: refused rather than guessed.
        raise SettingsError(
            "LEDGER_APP_ROLE is replaced by LEDGER_API_ROLE and LEDGER_PROJECTOR_ROLE "
            '(docs/security.md, "Database roles"); unset it'
        )
    api, projector = env.get("LEDGER_API_ROLE"), env.get("LEDGER_PROJECTOR_ROLE")
    if not api and not projector:
        return None
    if not api or not projector or api == projector:
        raise SettingsError(
            "set LEDGER_API_ROLE and LEDGER_PROJECTOR_ROLE together, to two different roles"
        )
    return Roles(
        api=api,
        projector=projector,
        api_password=env.get("LEDGER_API_PASSWORD") or None,
        projector_password=env.get("LEDGER_PROJECTOR_PASSWORD") or None,
    )


class StreamSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The live event stream's limits (`GET /v1/events/stream`, docs/integrating.md)."""

    heartbeat_seconds: float = 15.0
    """A comment this often keeps proxies from closing an idle stream."""
    queue_events: int = 1000
    """Events a stream may fall behind by; past it the stream is closed (a slow consumer)."""
    max_seconds: float = 3600.0
    """A stream ends after this long, and the client resumes (spreads streams over workers)."""
    max_streams: int = 1000
    """Streams open at once in one process; more get 503."""
    gather_seconds: float = 0.01
    """Appends committed this close together reach the streams in one read and one message
    write per stream: longer saves processor time under many streams, and adds latency."""


def load_stream_settings(environ: Mapping[str, str] | None = None) -> StreamSettings:
    env = os.environ if environ is None else environ
    defaults = StreamSettings()

    def positive(name: str, default: float) -> float:
        text = env.get(name, "").strip()
        if not text:
            return default
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value < float("inf"):
            raise SettingsError(f"{name} must be a positive number of seconds, got {text!r}")
        return value

    def whole(name: str, default: int) -> int:
        text = env.get(name, "").strip()
        if not text:
            return default
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            raise SettingsError(f"{name} must be a whole number from 1, got {text!r}")
        return int(text)

    return StreamSettings(
        heartbeat_seconds=positive("LEDGER_SSE_HEARTBEAT_SECONDS", defaults.heartbeat_seconds),
        queue_events=whole("LEDGER_SSE_QUEUE_EVENTS", defaults.queue_events),
        max_seconds=positive("LEDGER_SSE_MAX_SECONDS", defaults.max_seconds),
        max_streams=whole("LEDGER_SSE_MAX_STREAMS", defaults.max_streams),
        gather_seconds=positive("LEDGER_SSE_GATHER_SECONDS", defaults.gather_seconds),
    )


INTRODUCTION_WINDOW_DAYS = 30
MAX_INTRODUCTION_WINDOW_DAYS = 3650


def introduction_window(environ: Mapping[str, str] | None = None) -> timedelta:
    """How long after an introduction a first contact makes it take: LEDGER_INTRODUCTION_WINDOW_DAYS
    (whole days, default 30). Read when answering, so changing it needs no rebuild."""
    env = os.environ if environ is None else environ
    value = env.get("LEDGER_INTRODUCTION_WINDOW_DAYS", "").strip()
    if not value:
        return timedelta(days=INTRODUCTION_WINDOW_DAYS)
    if (
        not value.isascii()
        or not value.isdigit()
        or not 1 <= int(value) <= MAX_INTRODUCTION_WINDOW_DAYS
    ):
        raise SettingsError(
            f"LEDGER_INTRODUCTION_WINDOW_DAYS must be whole days from 1 to "
            f"{MAX_INTRODUCTION_WINDOW_DAYS}, got {value!r}"
        )
    return timedelta(days=int(value))
