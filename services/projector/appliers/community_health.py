"""Writes community health: members' rows as changes added once per batch, then the firsts
and spells those rows moved; totals and the histogram as changes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from domain.projections import Aliases, Entry, community_health
from domain.projections.community_health import TOTALS, MemberKey, Ref, RowKey
from services.projector.appliers.base import Memories
from services.projector.appliers.rows import (
    Columns,
    add_counts,
    as_json,
    create_aliases_table,
    create_index,
    delete,
    fetch,
    key_rows,
    names,
    record,
    save_aliases,
    select_by_ids,
    select_by_key,
    upsert,
    uuids,
)

TOTAL_KEY: Columns = (("period", "text"), ("space", "text"), ("period_start", "date"))
TOTAL_COLUMNS: Columns = (*TOTAL_KEY, *((name, "integer") for name in TOTALS))
HISTOGRAM_KEY: Columns = (*TOTAL_KEY, ("contributions", "integer"))
HISTOGRAM_COLUMNS: Columns = (*HISTOGRAM_KEY, ("members", "integer"))
ROW_KEY: Columns = (
    ("member_id", "uuid"),
    ("space", "text"),
    ("period", "text"),
    ("period_start", "date"),
)
ROW_COLUMNS: Columns = (*ROW_KEY, ("contributions", "integer"), ("actions", "integer"))
MEMBER_KEY: Columns = (("member_id", "uuid"), ("space", "text"))
MEMBER_COLUMNS: Columns = (
    *MEMBER_KEY,
    ("first_contribution", "date"),
    ("first_action", "date"),
)
SPELL_KEY: Columns = (*MEMBER_KEY, ("first_day", "date"))
SPELL_COLUMNS: Columns = (*SPELL_KEY, ("last_day", "date"))
REF_COLUMNS: Columns = (
    ("ref_id", "uuid"),
    ("member_id", "uuid"),
    ("space", "text"),
    ("day", "date"),
    ("contribution", "boolean"),
    ("taken_back", "boolean"),
)


class MemberPeriodRow(msgspec.Struct):
    member_id: UUID
    space: str
    period: str
    period_start: date
    contributions: int
    actions: int


class MemberRow(msgspec.Struct):
    member_id: UUID
    space: str
    first_contribution: date | None
    first_action: date | None


class SpellRow(msgspec.Struct):
    member_id: UUID
    space: str
    first_day: date
    last_day: date


class CommunityHealthApplier:
    name = community_health.NAME
    version = community_health.VERSION
    tables: tuple[str, ...] = (
        "health_periods",
        "health_histogram",
        "health_member_periods",
        "health_members",
        "health_spells",
        "health_refs",
        "health_aliases",
    )

    def __init__(self) -> None:
        # The version this applier builds, fixed when a runner makes it.
        self.version = type(self).version
        self.memories: Memories[Any, Any] = Memories()

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        periods, histogram, rows, members, spells, refs, aliases = (
            sql.Identifier(schema, t) for t in self.tables
        )
        for table, columns, key in (
            (periods, TOTAL_COLUMNS, TOTAL_KEY),
            (histogram, HISTOGRAM_COLUMNS, HISTOGRAM_KEY),
            (rows, ROW_COLUMNS, ROW_KEY),
            (members, MEMBER_COLUMNS, MEMBER_KEY),
            (spells, SPELL_COLUMNS, SPELL_KEY),
            (refs, REF_COLUMNS, REF_COLUMNS[:1]),
        ):
            nullable = {"first_contribution", "first_action"}
            definitions = sql.SQL(", ").join(
                sql.SQL("{} {}{}").format(
                    sql.Identifier(name),
                    sql.SQL(kind),
                    sql.SQL("" if name in nullable else " NOT NULL"),
                )
                for name, kind in columns
            )
            await conn.execute(
                sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
                    table, definitions, names(key)
                )
            )
        await create_aliases_table(conn, aliases)

    async def create_indexes(self, conn: AsyncConnection[Any], schema: str) -> None:
        # A cohort's members are listed most contributing first, a page at a time.
        await conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS health_member_periods_ranked_idx ON {} "
                "(period, space, period_start, contributions DESC, member_id)"
            ).format(sql.Identifier(schema, "health_member_periods"))
        )
        # New contributors of a period: members by the day of their first contribution.
        await conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS health_members_first_idx ON {} "
                "(space, first_contribution)"
            ).format(sql.Identifier(schema, "health_members"))
        )
        # Inactive contributors of a period: one space's spells in member order, each
        # with its last day (an index-only scan; the primary key leads by member).
        await conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS health_spells_space_idx ON {} "
                "(space, member_id, first_day) INCLUDE (last_day)"
            ).format(sql.Identifier(schema, "health_spells"))
        )
        # Returning contributors of a period: the spells that started in it.
        await conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS health_spells_started_idx ON {} "
                "(space, first_day) INCLUDE (member_id)"
            ).format(sql.Identifier(schema, "health_spells"))
        )
        await create_index(conn, schema, "health_aliases", "survivor_id")

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry], *, after: int
    ) -> None:
        periods, histogram, rows, members, spells, refs, aliases = (
            sql.Identifier(schema, t) for t in self.tables
        )
        memory = self.memories.of(schema)
        memory.begin(after)
        state = community_health.State()
        needed = community_health.refs_needed(entries)
        found = await select_by_ids(conn, refs, REF_COLUMNS, needed, Ref)
        state.refs = {ref.ref_id: ref for ref in found}
        state.aliases = Aliases(await memory.known_aliases(conn, aliases))
        if merged := community_health.merged_away(state.aliases, entries):
            for row in await _day_rows(conn, rows, members_=merged):
                days = state.stored_days.setdefault(row.member_id, {}).setdefault(row.space, {})
                days[row.period_start] = [row.contributions, row.actions]
        community_health.fold(state, entries)
        changes = community_health.row_changes(state)
        stored = await _add_rows(conn, rows, changes)
        gone = community_health.settle_rows(state, stored)
        await delete(conn, rows, ROW_KEY, gone)
        await self._settle_members(conn, state, rows, members, spells)
        await add_counts(conn, periods, TOTAL_COLUMNS, TOTAL_KEY, _totals(state))
        await add_counts(conn, histogram, HISTOGRAM_COLUMNS, HISTOGRAM_KEY, _histogram(state))
        changed_refs = [state.refs[r] for r in state.changed_refs]
        await upsert(conn, refs, REF_COLUMNS, REF_COLUMNS[:1], changed_refs)
        await save_aliases(conn, aliases, memory, state.aliases.added)
        memory.end(entries[-1].position)

    async def _settle_members(
        self,
        conn: AsyncConnection[Any],
        state: community_health.State,
        rows: sql.Identifier,
        members: sql.Identifier,
        spells: sql.Identifier,
    ) -> None:
        """Load the firsts and spells (and days, where one was emptied) that moved; write them."""
        keys = list(state.changed)
        if not keys:
            return
        firsts = {
            (m.member_id, m.space): (m.first_contribution, m.first_action)
            for m in await select_by_key(conn, members, MEMBER_COLUMNS, MEMBER_KEY, keys, MemberRow)
        }
        stored_spells: dict[MemberKey, dict[date, date]] = {}
        for spell in await select_by_key(conn, spells, SPELL_COLUMNS, MEMBER_KEY, keys, SpellRow):
            stored_spells.setdefault((spell.member_id, spell.space), {})[spell.first_day] = (
                spell.last_day
            )
        days: dict[MemberKey, dict[date, tuple[int, int]]] = {}
        if emptied := community_health.needs_days(state):
            for row in await _day_rows(conn, rows, keys=emptied):
                days.setdefault((row.member_id, row.space), {})[row.period_start] = (
                    row.contributions,
                    row.actions,
                )
        settled = community_health.settle_members(state, firsts, stored_spells, days)
        await delete(conn, members, MEMBER_KEY, settled.members_gone)
        await upsert(
            conn,
            members,
            MEMBER_COLUMNS,
            MEMBER_KEY,
            [MemberRow(*k, c, a) for k, c, a in settled.members],
        )
        await delete(conn, spells, SPELL_KEY, [(*k, first) for k, first in settled.spells_gone])
        await upsert(
            conn,
            spells,
            SPELL_COLUMNS,
            SPELL_KEY,
            [SpellRow(*k, f, last) for k, f, last in settled.spells],
        )


async def _add_rows(
    conn: AsyncConnection[Any], table: sql.Identifier, changes: dict[RowKey, list[int]]
) -> list[tuple[RowKey, int, int]]:
    """Add the changes to the members' period rows in one statement; answer their new counts.

    Each row is written once per batch, and its old counts need no read: they are the
    new ones less the change.
    """
    if not changes:
        return []
    query = sql.SQL("""
        WITH added AS (
            INSERT INTO {table} AS t ({names})
            SELECT {names}
            FROM json_to_recordset(%s::json) AS r({record})
            ON CONFLICT ({key}) DO UPDATE
            SET contributions = t.contributions + excluded.contributions,
                actions = t.actions + excluded.actions
            RETURNING {names}
        )
        SELECT coalesce(json_agg(json_build_array({names})), '[]')::text
        FROM added
    """).format(
        table=table, names=names(ROW_COLUMNS), record=record(ROW_COLUMNS), key=names(ROW_KEY)
    )
    rows = [MemberPeriodRow(*key, c, a) for key, (c, a) in changes.items()]
    cur = await conn.execute(query, [as_json(rows)])
    found = await cur.fetchone()
    stored = _stored_rows.decode(found[0] if found else "[]")
    return [((m, s, p, start), c, a) for m, s, p, start, c, a in stored]


_stored_rows = msgspec.json.Decoder(list[tuple[UUID, str, str, date, int, int]])


async def _day_rows(
    conn: AsyncConnection[Any],
    table: sql.Identifier,
    *,
    keys: Iterable[MemberKey] = (),
    members_: Iterable[UUID] = (),
) -> list[MemberPeriodRow]:
    """The day rows of members in a space (`keys`), or of members in every space (`members_`)."""
    if members_:
        query = sql.SQL("""
            SELECT {columns}
            FROM {table} AS t
            WHERE t.member_id = ANY(%s::uuid[])
              AND t.period = 'day'
        """).format(columns=names(ROW_COLUMNS, "t"), table=table)
        return await fetch(conn, query, [uuids(members_)], MemberPeriodRow)
    query = sql.SQL("""
        SELECT {columns}
        FROM {table} AS t
        JOIN {keys} USING (member_id, space)
        WHERE t.period = 'day'
    """).format(columns=names(ROW_COLUMNS, "t"), table=table, keys=key_rows(MEMBER_KEY, ()))
    return await fetch(conn, query, [as_json(list(keys))], MemberPeriodRow)


def _totals(state: community_health.State) -> list[tuple[Any, ...]]:
    return [(*key, *changes) for key, changes in state.totals.items() if any(changes)]


def _histogram(state: community_health.State) -> list[tuple[Any, ...]]:
    return [(*key, change) for key, change in state.histogram.items() if change]
