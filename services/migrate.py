"""Schema migrations through Alembic, driven from code so no alembic.ini is needed.

Alembic (and SQLAlchemy under it) and the projections are imported by the functions that
migrate, not with this module: every CLI command loads it, and most never migrate (a
fifth of a second of `community-ledger`'s start, docs/performance.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

import migrations
from services.settings import Roles
from services.store import privileges

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", roles: Roles | None = None) -> None:
    """Migrate; with roles, grant them; at head, give every projection an empty live build."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
    if roles is not None:
        privileges.grant(url, roles)
    if is_at_head(url):
        asyncio.run(_make_live_builds(url, roles))


def upgrade_if_owner(url: str, roles: Roles | None = None) -> None:
    """For `serve`: migrate when connected as the ledger's owner; as a restricted role,
    only check that the owner's `db upgrade` has brought the schema to head."""
    if owns_ledger(url):
        upgrade(url, roles=roles)
        return
    current, head = current_revision(url), head_revision()
    if current != head:
        raise LookupError(
            f"the schema is at {current or 'base (empty)'} but the code needs {head}: run "
            "`community-ledger db upgrade` as the database's owner"
        )


def owns_ledger(url: str) -> bool:
    """Whether this connection may migrate: it owns `events`, or there is no ledger yet."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(("
            "    SELECT pg_has_role(current_user, relowner, 'USAGE')"
            "    FROM pg_class WHERE oid = to_regclass('events')), true)"
        ).fetchone()
    return bool(row and row[0])


async def _make_live_builds(url: str, roles: Roles | None) -> list[str]:
    from services.projector.fresh import make_live_builds

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        if roles is not None:
            # Made as the projector, so it owns them: it swaps and drops them later.
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(roles.projector)))
        return await make_live_builds(conn)


def downgrade(url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

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
