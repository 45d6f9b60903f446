"""Configuration from the environment, read once per process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import msgspec

DEFAULT_DATA_DIR = ".ledger"


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

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        data_dir=Path(env.get("LEDGER_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve(),
        roles=_roles(env),
    )


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
