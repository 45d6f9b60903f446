"""Schema migrations through Alembic, driven from code so no alembic.ini is needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg import sql

import migrations
from services.projector.fresh import make_live_builds

MIGRATIONS_DIR = Path(migrations.__file__).parent
LEDGER_TABLES = ("events", "event_tags")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", app_role: str | None = None) -> None:
    """Migrate; at head, also give every projection an empty live build if it has none."""
    command.upgrade(alembic_config(url), revision)
    if is_at_head(url):
        asyncio.run(_make_live_builds(url))
    if app_role:
        grant_app_role(url, app_role)


async def _make_live_builds(url: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await make_live_builds(conn)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def current_revision(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def is_at_head(url: str) -> bool:
    return current_revision(url) == head_revision()


def grant_app_role(url: str, role: str) -> None:
    """Immutability as a permission too: the app's role may read and append the ledger, no more."""
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        if not exists:
            raise LookupError(f"LEDGER_APP_ROLE names role {role!r}, which does not exist")
        who = sql.Identifier(role)
        ledger = sql.SQL(", ").join(map(sql.Identifier, LEDGER_TABLES))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who))
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
            ).format(who)
        )
        conn.execute(sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(ledger, who))
        conn.execute(sql.SQL("REVOKE UPDATE, DELETE ON alembic_version FROM {}").format(who))
        # Appends number their events from this sequence (nextval, and setval for a batch).
        conn.execute(
            sql.SQL("GRANT USAGE, UPDATE ON SEQUENCE events_position_seq TO {}").format(who)
        )
