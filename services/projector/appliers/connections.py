"""Writes the connection graph: load the pairs a batch touches, fold it, write what changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from domain.projections import Aliases, Entry, connections
from domain.projections.connections import RELATIONS, Pair, PairKey
from services.projector.appliers.base import Memories
from services.projector.appliers.rows import (
    Columns,
    create_aliases_table,
    create_index,
    delete,
    save_aliases,
    select_by_key,
    upsert,
)

PAIR_KEY: Columns = (("member_a", "uuid"), ("member_b", "uuid"))
PAIR_COLUMNS: Columns = (
    *PAIR_KEY,
    *((relation, "integer") for relation in RELATIONS),
    *((f"last_{relation}_at", "timestamptz") for relation in RELATIONS),
)


class ConnectionsApplier:
    name = connections.NAME
    version = connections.VERSION
    tables: tuple[str, ...] = ("connections", "connection_aliases")

    def __init__(self) -> None:
        # The version this applier builds, fixed when a runner makes it.
        self.version = type(self).version
        self.memories: Memories[PairKey, Pair] = Memories()

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        pairs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        counts = [sql.Identifier(relation) for relation in RELATIONS]
        lasts = [sql.Identifier(f"last_{relation}_at") for relation in RELATIONS]
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {table} (
                member_a uuid NOT NULL,
                member_b uuid NOT NULL,
                {counts},
                {lasts},
                weight   integer GENERATED ALWAYS AS ({weight}) STORED,
                last_at  timestamptz GENERATED ALWAYS AS (greatest({last})) STORED,
                PRIMARY KEY (member_a, member_b),
                CHECK (member_a < member_b)
            )""").format(
                table=pairs,
                counts=sql.SQL(", ").join(sql.SQL("{} integer NOT NULL").format(c) for c in counts),
                lasts=sql.SQL(", ").join(sql.SQL("{} timestamptz").format(c) for c in lasts),
                weight=sql.SQL(" + ").join(counts),
                last=sql.SQL(", ").join(lasts),
            )
        )
        await create_aliases_table(conn, aliases)

    async def create_indexes(self, conn: AsyncConnection[Any], schema: str) -> None:
        # "Who is X connected to" looks X up on either side: both are index lookups.
        await create_index(conn, schema, "connections", "member_b")
        await create_index(conn, schema, "connection_aliases", "survivor_id")

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry], *, after: int
    ) -> None:
        pairs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        memory = self.memories.of(schema)
        memory.begin(after)
        state = connections.State()
        state.aliases = Aliases(await memory.known_aliases(conn, aliases))
        keys, members = connections.rows_needed(state, entries)
        state.pairs = await _load_pairs(conn, pairs, keys, members)
        connections.fold(state, entries)
        await delete(conn, pairs, PAIR_KEY, state.removed)
        await upsert(
            conn, pairs, PAIR_COLUMNS, PAIR_KEY, [_row(state.pairs[k]) for k in state.changed]
        )
        await save_aliases(conn, aliases, memory, state.aliases.added)
        memory.end(entries[-1].position)


class PairRow(msgspec.Struct):
    """A pair as the table holds it (read back): per relation a count, then a last moment."""

    member_a: UUID
    member_b: UUID
    introduced_together: int
    introduced: int
    mentioned: int
    recognised: int
    last_introduced_together_at: datetime | None
    last_introduced_at: datetime | None
    last_mentioned_at: datetime | None
    last_recognised_at: datetime | None


def _row(pair: Pair) -> dict[str, Any]:
    row: dict[str, Any] = {"member_a": pair.member_a, "member_b": pair.member_b, **pair.counts}
    for relation in RELATIONS:
        row[f"last_{relation}_at"] = pair.last_at[relation]
    return row


def _pair(row: PairRow) -> Pair:
    counts = {relation: getattr(row, relation) for relation in RELATIONS}
    last_at = {relation: getattr(row, f"last_{relation}_at") for relation in RELATIONS}
    return Pair(row.member_a, row.member_b, counts, last_at)


async def _load_pairs(
    conn: AsyncConnection[Any], table: sql.Identifier, keys: set[PairKey], members: set[UUID]
) -> dict[PairKey, Pair]:
    if not keys and not members:
        return {}
    rows = await select_by_key(conn, table, PAIR_COLUMNS, PAIR_KEY, keys, PairRow, members)
    return {(row.member_a, row.member_b): _pair(row) for row in rows}
