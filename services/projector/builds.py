"""Bookkeeping of projection builds: checkpoints, leases and the swap of live tables.

Every statement that moves a checkpoint is fenced twice: by the lease token (a runner
that lost its lease cannot commit) and by the position it started from (two runners
can never both apply the same batch, whatever the clocks say). Each move is announced
(`notices`), so that reads waiting for a position wake when it commits.
"""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg import AsyncConnection, sql

from services.projector.notices import announce

LEASE_SECONDS = 10.0

BUILD_COLUMNS = "build_id, name, version, schema_name, position, state, error"


class Build(msgspec.Struct, kw_only=True):
    build_id: int
    name: str
    version: int
    schema_name: str
    position: int
    state: str
    error: str | None = None


class LostLease(Exception):
    """Another runner holds this projection now; stop working on it."""


def _build(row: tuple[Any, ...]) -> Build:
    build_id, name, version, schema_name, position, state, error = row
    return Build(
        build_id=build_id,
        name=name,
        version=version,
        schema_name=schema_name,
        position=position,
        state=state,
        error=error,
    )


async def builds_of(conn: AsyncConnection[Any], name: str) -> dict[str, Build]:
    """The live and the building build of a projection, by state."""
    cur = await conn.execute(
        f"SELECT {BUILD_COLUMNS} FROM projection_builds "
        "WHERE name = %s AND state IN ('live', 'building')",
        [name],
    )
    return {build.state: build for build in map(_build, await cur.fetchall())}


async def start_build(
    conn: AsyncConnection[Any], name: str, version: int, create_tables: Any
) -> Build:
    """A fresh, empty build in a schema of its own; the live one keeps serving meanwhile."""
    async with conn.transaction():
        build = await request_build(conn, name, version)
        await materialize(conn, build, create_tables)
    return build


async def request_build(conn: AsyncConnection[Any], name: str, version: int) -> Build:
    """A fresh build's row, its schema left for the projector to make: what the API may do
    (its database role creates no schema, docs/security.md)."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE projection_builds SET state = 'retired', updated_at = now() "
            "WHERE name = %s AND state = 'building'",
            [name],
        )
        return await _new_build(conn, name, version, "building")


async def materialize(conn: AsyncConnection[Any], build: Build, create_tables: Any) -> None:
    """Make a build's schema and tables unless they exist; drop what retired builds left."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT schema_name FROM projection_builds "
            "WHERE name = %s AND state = 'retired' AND to_regnamespace(schema_name) IS NOT NULL",
            [build.name],
        )
        for (abandoned,) in await cur.fetchall():
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(abandoned))
            )
        cur = await conn.execute("SELECT to_regnamespace(%s) IS NULL", [build.schema_name])
        missing = await cur.fetchone()
        if missing and missing[0]:
            await conn.execute(
                sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(build.schema_name))
            )
            await create_tables(conn, build.schema_name)


async def start_live(
    conn: AsyncConnection[Any],
    name: str,
    version: int,
    create_tables: Any,
    tables: tuple[str, ...],
) -> Build:
    """An empty build, live at once at position 0: readers find empty tables, not none.

    For a projection that has no live build yet (a fresh database); the runner then
    catches it up in place. The caller holds the projection's lease.
    """
    async with conn.transaction():
        build = await _new_build(conn, name, version, "live")
        await materialize(conn, build, create_tables)
        await _point_views(conn, build.schema_name, tables)
    return build


async def _new_build(conn: AsyncConnection[Any], name: str, version: int, state: str) -> Build:
    cur = await conn.execute(
        "INSERT INTO projection_builds (name, version, schema_name, state, live_at) "
        "VALUES (%(name)s, %(version)s, %(name)s || '_v' || %(version)s || '_' || "
        "        currval(pg_get_serial_sequence('projection_builds', 'build_id')), "
        "        %(state)s, CASE WHEN %(state)s::text = 'live' THEN now() END) "
        f"RETURNING {BUILD_COLUMNS}",
        {"name": name, "version": version, "state": state},
    )
    row = await cur.fetchone()
    assert row is not None
    return _build(row)


async def _point_views(conn: AsyncConnection[Any], schema: str, tables: tuple[str, ...]) -> None:
    for table in tables:
        view = sql.Identifier("read", table)
        await conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
        await conn.execute(
            sql.SQL("CREATE VIEW {} AS SELECT * FROM {}").format(
                view, sql.Identifier(schema, table)
            )
        )


async def advance(
    conn: AsyncConnection[Any], build: Build, to: int, owner: str, token: int
) -> None:
    """Move the checkpoint inside the caller's transaction, or raise LostLease."""
    cur = await conn.execute(
        """
        UPDATE projection_builds b
        SET position = %(to)s, updated_at = now()
        WHERE b.build_id = %(build_id)s
          AND b.position = %(from)s
          AND EXISTS (
              SELECT 1 FROM projection_leases l
              WHERE l.name = b.name AND l.owner = %(owner)s AND l.token = %(token)s
          )
        """,
        {
            "to": to,
            "build_id": build.build_id,
            "from": build.position,
            "owner": owner,
            "token": token,
        },
    )
    if cur.rowcount != 1:
        raise LostLease(build.name)
    if build.state == "live":  # a build being rebuilt serves nobody until its swap
        await announce(conn, build.name, to)


async def fail(conn: AsyncConnection[Any], build: Build, error: str) -> None:
    await conn.execute(
        "UPDATE projection_builds SET error = %s, updated_at = now() WHERE build_id = %s",
        [error, build.build_id],
    )


async def swap_in(conn: AsyncConnection[Any], build: Build, tables: tuple[str, ...]) -> None:
    """Make a caught-up build live: readers switch in one transaction, never see it half-built."""
    async with conn.transaction():
        cur = await conn.execute(
            "UPDATE projection_builds SET state = 'retired', updated_at = now() "
            "WHERE name = %s AND state = 'live' RETURNING schema_name",
            [build.name],
        )
        retired = [schema for (schema,) in await cur.fetchall()]
        await conn.execute(
            "UPDATE projection_builds SET state = 'live', live_at = now(), updated_at = now() "
            "WHERE build_id = %s",
            [build.build_id],
        )
        await _point_views(conn, build.schema_name, tables)
        await announce(conn, build.name, build.position)
    build.state = "live"
    for schema in retired:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


async def take_lease(
    conn: AsyncConnection[Any], name: str, owner: str, *, seconds: float = LEASE_SECONDS
) -> int | None:
    """Take or renew the lease for `seconds`; answer its token, or None while another
    runner holds it."""
    await conn.execute(
        "INSERT INTO projection_leases (name) VALUES (%s) ON CONFLICT DO NOTHING", [name]
    )
    cur = await conn.execute(
        """
        UPDATE projection_leases
        SET token = CASE WHEN owner = %(owner)s THEN token ELSE token + 1 END,
            owner = %(owner)s,
            expires_at = now() + make_interval(secs => %(seconds)s)
        WHERE name = %(name)s AND (owner = %(owner)s OR expires_at < now())
        RETURNING token
        """,
        {"name": name, "owner": owner, "seconds": seconds},
    )
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def release_lease(conn: AsyncConnection[Any], name: str, owner: str) -> None:
    await conn.execute(
        "UPDATE projection_leases SET owner = NULL, expires_at = '-infinity' "
        "WHERE name = %s AND owner = %s",
        [name, owner],
    )
