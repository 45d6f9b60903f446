"""Writes contribution counts: commuting deltas in one upsert, merges as row moves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, sql

from domain.projections import Entry, contribution_counts
from domain.projections.contribution_counts import Changes, ContributionRef, Key
from services.projector.appliers import aliases_table_sql, load_aliases, save_aliases


class ContributionCountsApplier:
    name = contribution_counts.NAME
    version = contribution_counts.VERSION
    tables: tuple[str, ...] = (
        "contribution_counts",
        "counted_contributions",
        "contribution_count_aliases",
    )

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        counts, contributions, aliases = (sql.Identifier(schema, t) for t in self.tables)
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id uuid NOT NULL, kind text NOT NULL, space text NOT NULL,
                day date NOT NULL, count integer NOT NULL,
                PRIMARY KEY (member_id, kind, space, day)
            )""").format(counts)
        )
        await conn.execute(sql.SQL("CREATE INDEX ON {} (day)").format(counts))
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                contribution_id uuid PRIMARY KEY, member_id uuid NOT NULL, kind text NOT NULL,
                space text NOT NULL, day date NOT NULL, retracted boolean NOT NULL
            )""").format(contributions)
        )
        await conn.execute(aliases_table_sql(aliases))

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry]
    ) -> None:
        counts, contributions, aliases = (sql.Identifier(schema, t) for t in self.tables)
        changes = Changes()
        changes.contributions = await _load(
            conn, contributions, contribution_counts.contribution_ids_needed(entries)
        )
        wanted = contribution_counts.member_ids_needed(entries)
        wanted |= {ref.member_id for ref in changes.contributions.values()}
        changes.aliases = await load_aliases(conn, aliases, wanted)
        contribution_counts.fold(changes, entries)
        for step in changes.steps:
            if isinstance(step, dict):
                await _add(conn, counts, step)
            else:
                await _move(conn, counts, *step)
        await _save(
            conn, contributions, [changes.contributions[c] for c in changes.dirty_contributions]
        )
        await save_aliases(conn, aliases, changes.new_aliases)


async def _add(conn: AsyncConnection[Any], table: sql.Composable, deltas: dict[Key, int]) -> None:
    changed = {key: delta for key, delta in deltas.items() if delta}
    if not changed:
        return
    keys = list(changed)
    await conn.execute(
        sql.SQL(
            "INSERT INTO {t} (member_id, kind, space, day, count) "
            "SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::date[], %s::int[]) "
            "ON CONFLICT (member_id, kind, space, day) "
            "DO UPDATE SET count = {t}.count + excluded.count"
        ).format(t=table),
        [
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
            list(changed.values()),
        ],
    )
    # A count that went back to zero leaves no row, so rebuilds and catch-ups agree.
    await conn.execute(
        sql.SQL("DELETE FROM {} WHERE count = 0 AND member_id = ANY(%s)").format(table),
        [list({k[0] for k in keys})],
    )


async def _move(
    conn: AsyncConnection[Any], table: sql.Composable, duplicate: UUID, survivor: UUID
) -> None:
    await conn.execute(
        sql.SQL(
            "INSERT INTO {t} (member_id, kind, space, day, count) "
            "SELECT %(survivor)s, kind, space, day, count FROM {t} WHERE member_id = %(duplicate)s "
            "ON CONFLICT (member_id, kind, space, day) "
            "DO UPDATE SET count = {t}.count + excluded.count"
        ).format(t=table),
        {"survivor": survivor, "duplicate": duplicate},
    )
    await conn.execute(sql.SQL("DELETE FROM {} WHERE member_id = %s").format(table), [duplicate])


async def _load(
    conn: AsyncConnection[Any], table: sql.Composable, ids: set[UUID]
) -> dict[UUID, ContributionRef]:
    if not ids:
        return {}
    cur = await conn.execute(
        sql.SQL(
            "SELECT contribution_id, member_id, kind, space, day, retracted FROM {} "
            "WHERE contribution_id = ANY(%s)"
        ).format(table),
        [list(ids)],
    )
    return {row[0]: ContributionRef(*row) for row in await cur.fetchall()}


async def _save(
    conn: AsyncConnection[Any], table: sql.Composable, rows: list[ContributionRef]
) -> None:
    if not rows:
        return
    await conn.execute(
        sql.SQL(
            "INSERT INTO {} (contribution_id, member_id, kind, space, day, retracted) "
            "SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::date[], "
            "%s::boolean[]) "
            "ON CONFLICT (contribution_id) DO UPDATE SET retracted = excluded.retracted"
        ).format(table),
        [
            [r.contribution_id for r in rows],
            [r.member_id for r in rows],
            [r.kind for r in rows],
            [r.space for r in rows],
            [r.day for r in rows],
            [r.retracted for r in rows],
        ],
    )
