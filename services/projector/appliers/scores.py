"""Writes a score version's counted components; its graph job fills in brokerage and
ranks the leaderboards (`ranked`), so a leaderboard request reads the top rows of an index.

One applier class per published formula version (`score_applier`), so each version is a
projection with builds of its own: publishing v2 builds it from the ledger beside v1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from domain.brokerage import brokerage
from domain.projections import Aliases, Entry
from domain.projections import scores as fold
from domain.projections.scores import Evidence, TotalKey
from domain.scores import Formula, built
from services.projector.appliers.base import Memories
from services.projector.appliers.past_memory import PastMemory, Seen
from services.projector.appliers.rows import (
    Columns,
    create_aliases_table,
    create_index,
    delete,
    fetch,
    save_aliases,
    select_by_key,
    upsert,
    uuids,
)
from services.queries import scores as queries
from services.settings import introduction_window

EVIDENCE_KEY: Columns = (
    ("member_id", "uuid"),
    ("component", "text"),
    ("position", "bigint"),
    ("counterpart_id", "uuid"),
)
EVIDENCE_COLUMNS: Columns = (
    *EVIDENCE_KEY,
    ("ref_id", "uuid"),
    ("event_id", "uuid"),
    ("day", "date"),
)
CONTACT_KEY: Columns = (("member_id", "uuid"), ("component", "text"), ("counterpart_id", "uuid"))
CONTACT_COLUMNS: Columns = (*CONTACT_KEY, ("events", "integer"))
TOTAL_KEY: Columns = (("member_id", "uuid"), ("component", "text"))
TOTAL_COLUMNS: Columns = (*TOTAL_KEY, ("value", "integer"))
AUTHOR_KEY: Columns = (("contribution_id", "uuid"),)
AUTHOR_COLUMNS: Columns = (*AUTHOR_KEY, ("member_id", "uuid"))

GRAPH_SECONDS = 60.0
"""At most one graph job a minute per score version, while the connections move."""


class ContactRow(msgspec.Struct):
    member_id: UUID
    component: str
    counterpart_id: UUID
    events: int


class TotalRow(msgspec.Struct):
    member_id: UUID
    component: str
    value: int


class AuthorRow(msgspec.Struct):
    contribution_id: UUID
    member_id: UUID


class EvidenceRow(msgspec.Struct):
    member_id: UUID
    component: str
    position: int
    counterpart_id: UUID
    ref_id: UUID
    event_id: UUID | None
    day: date


def table_names(formula: Formula) -> tuple[str, ...]:
    kinds = ("evidence", "contacts", "totals", "brokerage", "graph_runs", "aliases", "authors")
    return tuple(formula.table(kind) for kind in (*kinds, "boards", "ranked", "past"))


JOB_KINDS = ("brokerage", "graph_runs", "boards", "ranked", "past")
"""The tables the graph job writes, not the fold."""


class ScoreApplier:
    """Base of the per-version classes `score_applier` makes; `formula` set on each."""

    formula: Formula
    name: str
    version = fold.VERSION
    tables: tuple[str, ...]
    job_tables: tuple[str, ...]
    """Written by the graph job, not the fold: when it ran (and its timings) is no function
    of the ledger alone, so comparisons of what folds built leave them out."""
    graph_seconds = GRAPH_SECONDS

    def __init__(self) -> None:
        self.version = type(self).version
        self.memories: Memories[Any, Any] = Memories()
        self.past = PastMemory()
        self._graph_at = 0.0

    def _ids(self, schema: str) -> tuple[sql.Identifier, ...]:
        return tuple(sql.Identifier(schema, t) for t in self.tables)

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        evidence, contacts, totals, broker, runs, aliases, authors, boards, ranked, past = (
            self._ids(schema)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id      uuid NOT NULL,
                component      text NOT NULL,
                position       bigint NOT NULL,
                counterpart_id uuid NOT NULL,
                ref_id         uuid NOT NULL,
                event_id       uuid,
                day            date NOT NULL,
                PRIMARY KEY (member_id, component, position, counterpart_id)
            )""").format(evidence)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id      uuid NOT NULL,
                component      text NOT NULL,
                counterpart_id uuid NOT NULL,
                events         integer NOT NULL,
                PRIMARY KEY (member_id, component, counterpart_id)
            )""").format(contacts)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id uuid NOT NULL,
                component text NOT NULL,
                value     integer NOT NULL,
                PRIMARY KEY (member_id, component)
            )""").format(totals)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id uuid PRIMARY KEY,
                value     double precision NOT NULL
            )""").format(broker)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                position    bigint NOT NULL,
                computed_at timestamptz NOT NULL DEFAULT now(),
                members     integer NOT NULL,
                connections integer NOT NULL,
                sources     integer NOT NULL,
                seconds     double precision NOT NULL
            )""").format(runs)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                span                  text PRIMARY KEY,
                first_day             date,
                end_day               date,
                took_window           interval NOT NULL,
                position              bigint NOT NULL,
                brokerage_position    bigint,
                brokerage_computed_at timestamptz,
                members               integer NOT NULL,
                computed_at           timestamptz NOT NULL DEFAULT now()
            )""").format(boards)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                span       text NOT NULL,
                rank       integer NOT NULL,
                member_id  uuid NOT NULL,
                value      double precision NOT NULL,
                components jsonb NOT NULL,
                PRIMARY KEY (span, rank)
            )""").format(ranked)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                span       text NOT NULL,
                end_day    date NOT NULL,
                rank       integer NOT NULL,
                member_id  uuid NOT NULL,
                value      double precision NOT NULL,
                components jsonb NOT NULL,
                PRIMARY KEY (span, end_day, rank)
            )""").format(past)
        )
        await create_aliases_table(conn, aliases)
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                contribution_id uuid PRIMARY KEY,
                member_id       uuid NOT NULL
            )""").format(authors)
        )
        # Kept up through the catch-up, unlike the readers' indexes: every batch with a
        # withdrawal looks its evidence up by recognition, every merge by either member.
        await create_index(conn, schema, self.tables[0], "ref_id")
        await create_index(conn, schema, self.tables[0], "counterpart_id")
        await create_index(conn, schema, self.tables[1], "counterpart_id")

    async def create_indexes(self, conn: AsyncConnection[Any], schema: str) -> None:
        evidence = self.tables[0]
        # Windowed leaderboards read the evidence of a range of days.
        await create_index(conn, schema, evidence, "day")
        await create_index(conn, schema, self.formula.table("aliases"), "survivor_id")

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry], *, after: int
    ) -> None:
        evidence_t, contacts_t, totals_t, _, _, aliases_t, authors_t, *_ = self._ids(schema)
        memory = self.memories.of(schema)
        memory.begin(after)
        state = fold.State(components=self.formula.counted)
        state.aliases = Aliases(await memory.known_aliases(conn, aliases_t))
        if answered := fold.authors_needed(state, entries):
            by_id = sql.SQL("SELECT * FROM {} WHERE contribution_id = ANY(%s::uuid[])")
            found_authors = await fetch(conn, by_id.format(authors_t), [uuids(answered)], AuthorRow)
            state.authors = {row.contribution_id: row.member_id for row in found_authors}
        keys, members = fold.rows_needed(state, entries)
        refs = fold.withdrawn(entries)
        if refs or members:
            found: list[EvidenceRow] = []
            if members:
                found += await select_by_key(
                    conn, evidence_t, EVIDENCE_COLUMNS, EVIDENCE_KEY, (), EvidenceRow, members
                )
            if refs:
                query = sql.SQL("SELECT * FROM {} WHERE ref_id = ANY(%s::uuid[])").format(
                    evidence_t
                )
                found += await fetch(conn, query, [uuids(refs)], EvidenceRow)
            for row in found:
                ev = Evidence(**msgspec.structs.asdict(row))
                state.evidence[ev.key] = ev
                keys.add((ev.member_id, ev.component, ev.counterpart_id))
        contacts = await _select(
            conn, contacts_t, CONTACT_COLUMNS, CONTACT_KEY, keys, ContactRow, members
        )
        state.contacts = {(r.member_id, r.component, r.counterpart_id): r.events for r in contacts}
        wanted: set[TotalKey] = {(m, c) for m, c, _ in state.contacts} | {
            (m, c) for m, c, _ in keys
        }
        totals = await _select(conn, totals_t, TOTAL_COLUMNS, TOTAL_KEY, wanted, TotalRow, members)
        state.totals = {(r.member_id, r.component): r.value for r in totals}
        fold.fold(state, entries)
        await delete(conn, evidence_t, EVIDENCE_KEY, state.dropped)
        await upsert(
            conn,
            evidence_t,
            EVIDENCE_COLUMNS,
            EVIDENCE_KEY,
            [state.evidence[k] for k in state.added],
        )
        await _write_counts(
            conn,
            contacts_t,
            CONTACT_COLUMNS,
            CONTACT_KEY,
            state.contacts,
            state.changed_contacts,
            ContactRow,
        )
        await _write_counts(
            conn, totals_t, TOTAL_COLUMNS, TOTAL_KEY, state.totals, state.changed_totals, TotalRow
        )
        await upsert(
            conn,
            authors_t,
            AUTHOR_COLUMNS,
            AUTHOR_KEY,
            [AuthorRow(c, m) for c, m in state.new_authors.items()],
        )
        await save_aliases(conn, aliases_t, memory, state.aliases.added)
        memory.end(entries[-1].position)

    async def when_idle(self, conn: AsyncConnection[Any], schema: str) -> bool:
        """The graph job: recompute brokerage when the connections moved, and rank the
        leaderboards again when anything they count moved or a day began (at most once a
        `graph_seconds`); answer whether it ran."""
        if time.monotonic() - self._graph_at < self.graph_seconds:
            return False
        self._graph_at = time.monotonic()
        measured = await recompute_brokerage(conn, schema, self.tables[3], self.tables[4])
        ranked = await rank_boards(
            conn, self.formula, schema, introduction_window(), memory=self.past
        )
        return measured or ranked


async def _select(
    conn: AsyncConnection[Any],
    table: sql.Identifier,
    columns: Columns,
    key: Columns,
    keys: set[Any],
    row: type[Any],
    members: set[UUID],
) -> list[Any]:
    if not keys and not members:
        return []
    return await select_by_key(conn, table, columns, key, keys, row, members)


async def _write_counts(
    conn: AsyncConnection[Any],
    table: sql.Identifier,
    columns: Columns,
    key: Columns,
    values: dict[Any, int],
    changed: set[Any],
    row: type[Any],
) -> None:
    await delete(conn, table, key, [k for k in changed if k not in values])
    await upsert(conn, table, columns, key, [row(*k, values[k]) for k in changed if k in values])


async def recompute_brokerage(
    conn: AsyncConnection[Any], schema: str, brokerage_table: str, runs_table: str
) -> bool:
    """Betweenness over the live connections, recorded with the position they reflect."""
    broker, runs = sql.Identifier(schema, brokerage_table), sql.Identifier(schema, runs_table)
    async with conn.transaction():
        # One snapshot: the pairs and the checkpoint that wrote them are read together.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur = await conn.execute(
            "SELECT position FROM projection_builds WHERE name = 'connections' AND state = 'live'"
        )
        found = await cur.fetchone()
        cur = await conn.execute(sql.SQL("SELECT max(position) FROM {}").format(runs))
        last = await cur.fetchone()
        if found is None or (last is not None and last[0] == found[0]):
            return False
        cur = await conn.execute("SELECT member_a, member_b FROM read.connections")
        pairs = await cur.fetchall()
    started = time.perf_counter()
    values, sources = await asyncio.to_thread(brokerage, pairs)
    seconds = time.perf_counter() - started
    async with conn.transaction():
        await conn.execute(sql.SQL("DELETE FROM {}").format(broker))
        async with conn.cursor().copy(
            sql.SQL("COPY {} (member_id, value) FROM STDIN").format(broker)
        ) as copy:
            for member, value in values.items():
                await copy.write_row((member, value))
        members = len({m for pair in pairs for m in pair})
        await conn.execute(sql.SQL("DELETE FROM {}").format(runs))  # the last run is the one
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (position, members, connections, sources, seconds) "
                "VALUES (%s, %s, %s, %s, %s)"
            ).format(runs),
            [found[0], members, len(pairs), sources, seconds],
        )
    return True


async def rank_boards(
    conn: AsyncConnection[Any],
    formula: Formula,
    schema: str,
    took_window: timedelta,
    memory: PastMemory | None = None,
) -> bool:
    """Rank every kept leaderboard from one snapshot of the version's build and the
    introductions, unless the last ranking reflects the same positions, days and window."""
    async with conn.transaction():
        # One snapshot: the totals, the pairs and the checkpoints that wrote them.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur = await conn.execute(
            "SELECT least(s.position, i.position), now() "
            "FROM projection_builds s, projection_builds i "
            "WHERE s.schema_name = %s AND i.name = 'introductions' AND i.state = 'live'",
            [schema],
        )
        found = await cur.fetchone()
        if found is None:
            return False
        position, now = found
        cur = await conn.execute(
            sql.SQL("SELECT position, computed_at FROM {} ORDER BY position DESC LIMIT 1").format(
                sql.Identifier(schema, formula.table("graph_runs"))
            )
        )
        run = await cur.fetchone()
        as_of = queries.AsOf(
            position=position,
            brokerage_position=run[0] if run else None,
            brokerage_computed_at=run[1] if run else None,
        )
        if await _boards_reflect(conn, formula, schema, as_of, took_window, now):
            return False
        await write_boards(conn, formula, schema, "read", as_of, took_window, now, memory)
    return True


def _days_of(span: str, now: datetime) -> tuple[date | None, date | None]:
    window = queries.score_window(span, None, now)
    return (window.first_day, window.end_day) if window else (None, None)


async def _boards_reflect(
    conn: AsyncConnection[Any],
    formula: Formula,
    schema: str,
    as_of: queries.AsOf,
    took_window: timedelta,
    now: datetime,
) -> bool:
    cur = await conn.execute(
        sql.SQL(
            "SELECT span, first_day, end_day, took_window, position, brokerage_position FROM {}"
        ).format(sql.Identifier(schema, formula.table("boards")))
    )
    kept = {row[0]: row[1:] for row in await cur.fetchall()}
    return all(
        kept.get(span)
        == (*_days_of(span, now), took_window, as_of.position, as_of.brokerage_position)
        for span in queries.RANKED_WINDOWS
    )


async def write_boards(
    conn: AsyncConnection[Any],
    formula: Formula,
    schema: str,
    sources: str,
    as_of: queries.AsOf,
    took_window: timedelta,
    now: datetime,
    memory: PastMemory | None = None,
) -> None:
    """Replace every kept ranking: the read-time ranking's rows, numbered, for each span
    (`sources`: the schema of the introductions and profiles read; `read` but in tests)."""
    boards = sql.Identifier(schema, formula.table("boards"))
    ranked = sql.Identifier(schema, formula.table("ranked"))
    await conn.execute(sql.SQL("DELETE FROM {}").format(ranked))
    await conn.execute(  # the past boards' rows: `write_past_boards` compares them first
        sql.SQL("DELETE FROM {} WHERE NOT starts_with(span, %s)").format(boards), [queries.PAST]
    )
    for span in queries.RANKED_WINDOWS:
        query, params = queries.ranking(
            formula, queries.score_window(span, None, now), schema, sources
        )
        cur = await conn.execute(query, {**params, "took_window": took_window})
        rows = await cur.fetchall()
        async with conn.cursor().copy(
            sql.SQL("COPY {} (span, rank, member_id, value, components) FROM STDIN").format(ranked)
        ) as copy:
            for rank, (member_id, _, value, components) in enumerate(rows, start=1):
                await copy.write_row(
                    (span, rank, member_id, value, msgspec.json.encode(components).decode())
                )
        first_day, end_day = _days_of(span, now)
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (span, first_day, end_day, took_window, position, "
                "brokerage_position, brokerage_computed_at, members) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(boards),
            [
                span,
                first_day,
                end_day,
                took_window,
                as_of.position,
                as_of.brokerage_position,
                as_of.brokerage_computed_at,
                len(rows),
            ],
        )
    await write_past_boards(conn, formula, schema, sources, as_of, took_window, memory)


async def write_past_boards(
    conn: AsyncConnection[Any],
    formula: Formula,
    schema: str,
    sources: str,
    as_of: queries.AsOf,
    took_window: timedelta,
    memory: PastMemory | None = None,
) -> None:
    """Every window ending on any day the ledger fills (`past_boards`): a board row per
    window, span `until:<window>`, its first and last end day kept. With the `memory` of
    the run that wrote the kept boards, only the end days whose windows changed are
    ranked again; without it (or when the boards are another run's), every end day."""
    boards = sql.Identifier(schema, formula.table("boards"))
    past = sql.Identifier(schema, formula.table("past"))
    from services.projector.appliers import past_boards  # numpy: see past_memory.py

    touched, members, names = await past_boards.read_touched(
        conn, formula, schema, sources, took_window
    )
    days = past_boards.digests(touched, members)
    before = memory.seen.get(schema) if memory is not None else None
    if before is not None and before.stamp != await _past_stamp(conn, boards):
        before = None  # the kept boards are not the ones this memory saw
    weights = [formula.weight(n) for n in names]
    ranked = past_boards.rank_past(
        touched, members, names, weights, past_boards.changed_days(before, days)
    )
    await conn.execute(
        sql.SQL("DELETE FROM {} WHERE starts_with(span, %s)").format(boards), [queries.PAST]
    )
    for board in ranked:
        if board.replaced is None or board.first_day is None:
            await conn.execute(sql.SQL("DELETE FROM {} WHERE span = %s").format(past), [board.span])
        else:
            await conn.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE span = %s "
                    "AND (end_day = ANY(%s) OR end_day < %s OR end_day > %s)"
                ).format(past),
                [board.span, board.replaced, board.first_day, board.last_day],
            )
        if board.rows:
            # One text block: a few hundred thousand rows, written row by row, cost seconds.
            async with conn.cursor().copy(
                sql.SQL(
                    "COPY {} (span, end_day, rank, member_id, value, components) FROM STDIN"
                ).format(past)
            ) as copy:
                await copy.write("".join(board.rows))
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (span, first_day, end_day, took_window, position, "
                "brokerage_position, brokerage_computed_at, members) "
                "SELECT %s, %s, %s, %s, %s, %s, %s, count(*) FROM {} WHERE span = %s"
            ).format(boards, past),
            [
                queries.PAST + board.span,
                board.first_day,
                board.last_day,
                took_window,
                as_of.position,
                as_of.brokerage_position,
                as_of.brokerage_computed_at,
                board.span,
            ],
        )
    if memory is not None:
        # Stamped with what this transaction wrote: if it rolls back, the stamps differ.
        memory.seen[schema] = Seen(stamp=await _past_stamp(conn, boards), days=days)


async def _past_stamp(conn: AsyncConnection[Any], boards: sql.Identifier) -> tuple[Any, ...]:
    cur = await conn.execute(
        sql.SQL(
            "SELECT span, position, computed_at, took_window FROM {} "
            "WHERE starts_with(span, %s) ORDER BY span"
        ).format(boards),
        [queries.PAST],
    )
    return tuple(await cur.fetchall())


def score_applier(formula: Formula) -> type[ScoreApplier]:
    """The applier class of one formula version: a projection of its own."""
    return type(
        f"ScoreApplier_{formula.name}_v{formula.version}",
        (ScoreApplier,),
        {
            "formula": formula,
            "name": formula.projection,
            "tables": table_names(formula),
            "job_tables": tuple(formula.table(kind) for kind in JOB_KINDS),
        },
    )


SCORE_APPLIERS: tuple[type[ScoreApplier], ...] = tuple(score_applier(f) for f in built())
"""One projection per published formula version (domain/scores.py FORMULAS)."""
