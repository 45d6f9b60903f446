"""Configuration from the environment, read once per process."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

DEFAULT_DATA_DIR = ".ledger"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None
    """An external PostgreSQL; None means the embedded one under `data_dir`."""
    data_dir: Path
    app_role: str | None
    """A role granted only what the app needs (SELECT and INSERT on the ledger)."""

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        data_dir=Path(env.get("LEDGER_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve(),
        app_role=env.get("LEDGER_APP_ROLE") or None,
    )
