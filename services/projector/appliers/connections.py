"""Writes the connection graph: one row per member pair, deltas upserted, merges as row moves."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, sql

from domain.projections import Entry, connections
from domain.projections.connections import RELATIONS, Changes, Pair, PairDelta
from services.projector.appliers import aliases_table_sql, as_json, load_aliases, save_aliases

COUNTS = sql.SQL(", ").join(sql.Identifier(r) for r in RELATIONS)
LASTS = sql.SQL(", ").join(sql.Identifier(f"last_{r}_at") for r in RELATIONS)


class ConnectionsApplier:
    name = connections.NAME
    version = connections.VERSION
    tables: tuple[str, ...] = ("connections", "connection_aliases")

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        pairs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        relation_columns = sql.SQL(", ").join(
            sql.SQL("{} integer NOT NULL, {} timestamptz").format(
                sql.Identifier(r), sql.Identifier(f"last_{r}_at")
            )
            for r in RELATIONS
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_a uuid NOT NULL, member_b uuid NOT NULL, {},
                weight integer GENERATED ALWAYS AS ({}) STORED,
                last_at timestamptz GENERATED ALWAYS AS (greatest({})) STORED,
                PRIMARY KEY (member_a, member_b), CHECK (member_a < member_b)
            )""").format(
                pairs,
                relation_columns,
                sql.SQL(" + ").join(sql.Identifier(r) for r in RELATIONS),
                LASTS,
            )
        )
        # "Who is X connected to" looks X up on either side: both are index lookups.
        await conn.execute(sql.SQL("CREATE INDEX ON {} (member_b)").format(pairs))
        await conn.execute(aliases_table_sql(aliases))

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry]
    ) -> None:
        pairs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        changes = Changes()
        changes.aliases = await load_aliases(conn, aliases, connections.member_ids_needed(entries))
        connections.fold(changes, entries)
        for step in changes.steps:
            if isinstance(step, dict):
                await _add(conn, pairs, step)
            else:
                await _move(conn, pairs, *step)
        await save_aliases(conn, aliases, changes.new_aliases)


def _upsert(table: sql.Composable, source: sql.Composable) -> sql.Composed:
    added = sql.SQL(", ").join(
        sql.SQL("{0} = {t}.{0} + excluded.{0}").format(sql.Identifier(r), t=table)
        for r in RELATIONS
    )
    latest = sql.SQL(", ").join(
        sql.SQL("{0} = greatest({t}.{0}, excluded.{0})").format(
            sql.Identifier(f"last_{r}_at"), t=table
        )
        for r in RELATIONS
    )
    return sql.SQL(
        "INSERT INTO {t} (member_a, member_b, {counts}, {lasts}) {source} "
        "ON CONFLICT (member_a, member_b) DO UPDATE SET {added}, {latest}"
    ).format(t=table, counts=COUNTS, lasts=LASTS, source=source, added=added, latest=latest)


async def _add(
    conn: AsyncConnection[Any], table: sql.Composable, deltas: dict[Pair, PairDelta]
) -> None:
    rows = [
        {
            "member_a": a,
            "member_b": b,
            **d.counts,
            **{f"last_{r}_at": d.last_at[r] for r in RELATIONS},
        }
        for (a, b), d in deltas.items()
    ]
    if not rows:
        return
    record = sql.SQL(", ").join(
        [sql.SQL("member_a uuid, member_b uuid")]
        + [sql.SQL("{} integer").format(sql.Identifier(r)) for r in RELATIONS]
        + [sql.SQL("{} timestamptz").format(sql.Identifier(f"last_{r}_at")) for r in RELATIONS]
    )
    source = sql.SQL(
        "SELECT member_a, member_b, {}, {} FROM jsonb_to_recordset(%s::jsonb) AS r({})"
    ).format(COUNTS, LASTS, record)
    await conn.execute(_upsert(table, source), [as_json(rows)])
    # A pair whose every relation was taken back leaves no row: rebuilds and catch-ups agree.
    members = list({m for row in rows for m in (row["member_a"], row["member_b"])})
    await conn.execute(
        sql.SQL("DELETE FROM {} WHERE weight = 0 AND member_a = ANY(%s)").format(table), [members]
    )


async def _move(
    conn: AsyncConnection[Any], table: sql.Composable, duplicate: UUID, survivor: UUID
) -> None:
    """Re-key the duplicate's pairs onto the survivor; a pair of the two becomes nothing."""
    other = sql.SQL("CASE WHEN member_a = %(dup)s THEN member_b ELSE member_a END")
    source = sql.SQL(
        "SELECT least(%(survivor)s::uuid, o), greatest(%(survivor)s::uuid, o), {counts}, {lasts} "
        "FROM (SELECT {other} AS o, * FROM {t} WHERE member_a = %(dup)s OR member_b = %(dup)s) s "
        "WHERE o <> %(survivor)s::uuid"
    ).format(counts=COUNTS, lasts=LASTS, other=other, t=table)
    params = {"dup": duplicate, "survivor": survivor}
    await conn.execute(_upsert(table, source), params)
    await conn.execute(
        sql.SQL("DELETE FROM {} WHERE member_a = %(dup)s OR member_b = %(dup)s").format(table),
        params,
    )
