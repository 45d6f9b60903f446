"""Writes introductions and their pairs: load what a batch touches, fold it, write what changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from domain.projections import Aliases, Entry, introductions
from domain.projections.introductions import Introduction, Pair, PairKey
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

INTRODUCTION_COLUMNS: Columns = (
    ("introduction_id", "uuid"),
    ("position", "bigint"),
    ("introducer_id", "uuid"),
    ("introduced_ids", "uuid[]"),
    ("introduced_at", "timestamptz"),
    ("event_id", "uuid"),
)
PAIR_KEY: Columns = (("introduction_id", "uuid"), ("member_a", "uuid"), ("member_b", "uuid"))
PAIR_MEMBERS: Columns = PAIR_KEY[1:]
PAIR_COLUMNS: Columns = (
    *PAIR_KEY,
    ("introducer_id", "uuid"),
    ("position", "bigint"),
    ("introduced_at", "timestamptz"),
    ("evidence_kind", "text"),
    ("evidence_id", "uuid"),
    ("evidence_event_id", "uuid"),
    ("evidence_position", "bigint"),
    ("evidence_at", "timestamptz"),
)
ROLE_KEY: Columns = (("member_id", "uuid"), ("role", "text"), ("position", "bigint"))
ROLE_COLUMNS: Columns = (*ROLE_KEY, ("introduction_id", "uuid"))
AUTHOR_COLUMNS: Columns = (("contribution_id", "uuid"), ("member_id", "uuid"))


class RoleRow(msgspec.Struct):
    member_id: UUID
    role: str
    position: int
    introduction_id: UUID


class AuthorRow(msgspec.Struct):
    contribution_id: UUID
    member_id: UUID


class IntroductionsApplier:
    name = introductions.NAME
    version = introductions.VERSION
    tables: tuple[str, ...] = (
        "introductions",
        "introduction_pairs",
        "introduction_roles",
        "introduction_authors",
        "introduction_aliases",
    )

    def __init__(self) -> None:
        # The version this applier builds, fixed when a runner makes it.
        self.version = type(self).version
        self.memories: Memories[PairKey, Pair] = Memories()

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        made, pairs, roles, authors, aliases = (sql.Identifier(schema, t) for t in self.tables)
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                introduction_id uuid PRIMARY KEY,
                position        bigint NOT NULL,
                introducer_id   uuid NOT NULL,
                introduced_ids  uuid[] NOT NULL,
                introduced_at   timestamptz NOT NULL,
                event_id        uuid
            )""").format(made)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                introduction_id   uuid NOT NULL,
                member_a          uuid NOT NULL,
                member_b          uuid NOT NULL,
                introducer_id     uuid NOT NULL,
                position          bigint NOT NULL,
                introduced_at     timestamptz NOT NULL,
                evidence_kind     text,
                evidence_id       uuid,
                evidence_event_id uuid,
                evidence_position bigint,
                evidence_at       timestamptz,
                PRIMARY KEY (introduction_id, member_a, member_b),
                CHECK (member_a < member_b),
                CHECK ((evidence_at IS NULL) = (evidence_position IS NULL))
            )""").format(pairs)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id       uuid NOT NULL,
                role            text NOT NULL CHECK (role IN ('introducer', 'introduced')),
                position        bigint NOT NULL,
                introduction_id uuid NOT NULL,
                PRIMARY KEY (member_id, role, position)
            )""").format(roles)
        )
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                contribution_id uuid PRIMARY KEY,
                member_id       uuid NOT NULL
            )""").format(authors)
        )
        await create_aliases_table(conn, aliases)

    async def create_indexes(self, conn: AsyncConnection[Any], schema: str) -> None:
        # A contact looks its pairs up by the two members; a merge and a score by introducer.
        await conn.execute(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS introduction_pairs_members_idx "
                "ON {} (member_a, member_b)"
            ).format(sql.Identifier(schema, "introduction_pairs"))
        )
        await create_index(conn, schema, "introduction_pairs", "introducer_id")
        await create_index(conn, schema, "introduction_aliases", "survivor_id")

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry], *, after: int
    ) -> None:
        made, pairs, roles, authors, aliases = (sql.Identifier(schema, t) for t in self.tables)
        memory = self.memories.of(schema)
        memory.begin(after)
        state = introductions.State()
        needed = introductions.authors_needed(entries)
        found = await select_by_ids(conn, authors, AUTHOR_COLUMNS, needed, AuthorRow)
        state.authors = {row.contribution_id: row.member_id for row in found}
        state.aliases = Aliases(await memory.known_aliases(conn, aliases))
        keys, members = introductions.rows_needed(state, entries)
        loaded = (
            await select_by_key(conn, pairs, PAIR_COLUMNS, PAIR_MEMBERS, keys, Pair) if keys else []
        )
        if members:
            role_rows = await select_by_ids(conn, roles, ROLE_COLUMNS, members, RoleRow)
            state.roles = {(r.member_id, r.role, r.position): r.introduction_id for r in role_rows}
            ids = set(state.roles.values())
            for row in await select_by_ids(conn, made, INTRODUCTION_COLUMNS, ids, Introduction):
                state.introductions[row.introduction_id] = row
            loaded += await select_by_ids(conn, pairs, PAIR_COLUMNS, ids, Pair)
        state.pairs = {pair.key: pair for pair in loaded}

        introductions.fold(state, entries)

        await delete(conn, pairs, PAIR_KEY, state.removed_pairs)
        await upsert(
            conn, pairs, PAIR_COLUMNS, PAIR_KEY, [state.pairs[k] for k in state.changed_pairs]
        )
        await delete(conn, roles, ROLE_KEY, state.removed_roles)
        role_rows = [RoleRow(*key, introduction_id=state.roles[key]) for key in state.changed_roles]
        await upsert(conn, roles, ROLE_COLUMNS, ROLE_KEY, role_rows)
        changed = [state.introductions[i] for i in state.changed_introductions]
        await upsert(conn, made, INTRODUCTION_COLUMNS, INTRODUCTION_COLUMNS[:1], changed)
        new_authors = [AuthorRow(c, state.authors[c]) for c in state.new_authors]
        await upsert(conn, authors, AUTHOR_COLUMNS, AUTHOR_COLUMNS[:1], new_authors)
        await save_aliases(conn, aliases, memory, state.aliases.added)
        memory.end(entries[-1].position)
