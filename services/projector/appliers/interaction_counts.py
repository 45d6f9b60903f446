"""Writes interaction counts: load the rows a batch touches, fold it, write what changed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from domain.projections import Aliases, Entry, interaction_counts
from domain.projections.interaction_counts import Key, RecognitionRef
from services.projector.appliers.base import Memories
from services.projector.appliers.rows import (
    Columns,
    create_aliases_table,
    create_index,
    delete,
    save_aliases,
    select_by_ids,
    select_by_key,
    upsert,
)

COUNT_KEY: Columns = (("member_id", "uuid"), ("fact", "text"), ("day", "date"))
COUNT_COLUMNS: Columns = (*COUNT_KEY, ("count", "integer"))
REF_COLUMNS: Columns = (
    ("recognition_id", "uuid"),
    ("from_id", "uuid"),
    ("to_id", "uuid"),
    ("day", "date"),
    ("withdrawn", "boolean"),
)


class CountRow(msgspec.Struct):
    member_id: UUID
    fact: str
    day: date
    count: int


class InteractionCountsApplier:
    name = interaction_counts.NAME
    version = interaction_counts.VERSION
    tables: tuple[str, ...] = (
        "interaction_counts",
        "counted_recognitions",
        "interaction_count_aliases",
    )

    def __init__(self) -> None:
        # The version this applier builds, fixed when a runner makes it.
        self.version = type(self).version
        self.memories: Memories[Key, int] = Memories()

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        counts, refs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id uuid NOT NULL,
                fact      text NOT NULL,
                day       date NOT NULL,
                count     integer NOT NULL,
                PRIMARY KEY (member_id, fact, day)
            )""").format(counts)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                recognition_id uuid PRIMARY KEY,
                from_id        uuid NOT NULL,
                to_id          uuid NOT NULL,
                day            date NOT NULL,
                withdrawn      boolean NOT NULL
            )""").format(refs)
        )
        await create_aliases_table(conn, aliases)

    async def create_indexes(self, conn: AsyncConnection[Any], schema: str) -> None:
        # A leaderboard sums one fact over a window of days: (fact, day) finds exactly its rows.
        await conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS interaction_counts_fact_day_idx ON {} (fact, day)"
            ).format(sql.Identifier(schema, "interaction_counts"))
        )
        await create_index(conn, schema, "interaction_count_aliases", "survivor_id")

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry], *, after: int
    ) -> None:
        counts, refs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        memory = self.memories.of(schema)
        memory.begin(after)
        state = interaction_counts.State()
        needed = interaction_counts.recognitions_needed(entries)
        found = await select_by_ids(conn, refs, REF_COLUMNS, needed, RecognitionRef)
        state.recognitions = {ref.recognition_id: ref for ref in found}
        state.aliases = Aliases(await memory.known_aliases(conn, aliases))
        keys, members = interaction_counts.rows_needed(state, entries)
        state.counts = await _load_counts(conn, counts, keys, members)
        interaction_counts.fold(state, entries)
        await delete(conn, counts, COUNT_KEY, state.removed)
        rows = [CountRow(*key, count=state.counts[key]) for key in state.changed]
        await upsert(conn, counts, COUNT_COLUMNS, COUNT_KEY, rows)
        changed_refs = [state.recognitions[r] for r in state.changed_recognitions]
        await upsert(conn, refs, REF_COLUMNS, REF_COLUMNS[:1], changed_refs)
        await save_aliases(conn, aliases, memory, state.aliases.added)
        memory.end(entries[-1].position)


async def _load_counts(
    conn: AsyncConnection[Any], table: sql.Identifier, keys: set[Key], members: set[UUID]
) -> dict[Key, int]:
    if not keys and not members:
        return {}
    rows = await select_by_key(conn, table, COUNT_COLUMNS, COUNT_KEY, keys, CountRow, members)
    return {(r.member_id, r.fact, r.day): r.count for r in rows}
