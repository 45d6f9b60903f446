"""Writes contribution counts: load the rows a batch touches, fold it, write what changed;
and adds the batch's changes to the per-day totals over members."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from domain.projections import Aliases, Entry, contribution_counts
from domain.projections.contribution_counts import ContributionRef, Key
from services.projector.appliers.base import Memories
from services.projector.appliers.rows import (
    Columns,
    add_counts,
    create_aliases_table,
    create_index,
    delete,
    save_aliases,
    select_by_ids,
    select_by_key,
    upsert,
)

COUNT_KEY: Columns = (("member_id", "uuid"), ("kind", "text"), ("space", "text"), ("day", "date"))
COUNT_COLUMNS: Columns = (*COUNT_KEY, ("count", "integer"))
DAY_KEY: Columns = (("kind", "text"), ("space", "text"), ("day", "date"))
DAY_COLUMNS: Columns = (*DAY_KEY, ("count", "integer"))
REF_COLUMNS: Columns = (
    ("contribution_id", "uuid"),
    ("member_id", "uuid"),
    ("kind", "text"),
    ("space", "text"),
    ("day", "date"),
    ("retracted", "boolean"),
)


class CountRow(msgspec.Struct):
    member_id: UUID
    kind: str
    space: str
    day: date
    count: int


class ContributionCountsApplier:
    name = contribution_counts.NAME
    version = contribution_counts.VERSION
    tables: tuple[str, ...] = (
        "contribution_counts",
        "counted_contributions",
        "contribution_count_aliases",
        "contribution_day_totals",
    )

    def __init__(self) -> None:
        # The version this applier builds, fixed when a runner makes it.
        self.version = type(self).version
        self.memories: Memories[Key, int] = Memories()

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        counts, refs, aliases, day_totals = (sql.Identifier(schema, t) for t in self.tables)
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id uuid NOT NULL,
                kind      text NOT NULL,
                space     text NOT NULL,
                day       date NOT NULL,
                count     integer NOT NULL,
                PRIMARY KEY (member_id, kind, space, day)
            )""").format(counts)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                contribution_id uuid PRIMARY KEY,
                member_id       uuid NOT NULL,
                kind            text NOT NULL,
                space           text NOT NULL,
                day             date NOT NULL,
                retracted       boolean NOT NULL
            )""").format(refs)
        )
        await create_aliases_table(conn, aliases)
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                kind  text NOT NULL,
                space text NOT NULL,
                day   date NOT NULL,
                count integer NOT NULL,
                PRIMARY KEY (kind, space, day)
            )""").format(day_totals)
        )

    async def create_indexes(self, conn: AsyncConnection[Any], schema: str) -> None:
        # Statistics over a period, for everyone or one kind or space, start from the day.
        await create_index(conn, schema, "contribution_counts", "day")
        await create_index(conn, schema, "contribution_count_aliases", "survivor_id")

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry], *, after: int
    ) -> None:
        counts, refs, aliases, day_totals = (sql.Identifier(schema, t) for t in self.tables)
        memory = self.memories.of(schema)
        memory.begin(after)
        state = contribution_counts.State()
        needed = contribution_counts.contributions_needed(entries)
        found = await select_by_ids(conn, refs, REF_COLUMNS, needed, ContributionRef)
        state.contributions = {ref.contribution_id: ref for ref in found}
        state.aliases = Aliases(await memory.known_aliases(conn, aliases))
        keys, members = contribution_counts.rows_needed(state, entries)
        state.counts = await _load_counts(conn, counts, keys, members)
        contribution_counts.fold(state, entries)
        await delete(conn, counts, COUNT_KEY, state.removed)
        rows = [CountRow(*key, count=state.counts[key]) for key in state.changed]
        await upsert(conn, counts, COUNT_COLUMNS, COUNT_KEY, rows)
        changed_refs = [state.contributions[c] for c in state.changed_contributions]
        await upsert(conn, refs, REF_COLUMNS, REF_COLUMNS[:1], changed_refs)
        changes = [(*day, change) for day, change in state.day_changes.items() if change]
        await add_counts(conn, day_totals, DAY_COLUMNS, DAY_KEY, changes, never_negative=True)
        await save_aliases(conn, aliases, memory, state.aliases.added)
        memory.end(entries[-1].position)


async def _load_counts(
    conn: AsyncConnection[Any], table: sql.Identifier, keys: set[Key], members: set[UUID]
) -> dict[Key, int]:
    if not keys and not members:
        return {}
    rows = await select_by_key(conn, table, COUNT_COLUMNS, COUNT_KEY, keys, CountRow, members)
    return {(r.member_id, r.kind, r.space, r.day): r.count for r in rows}
