"""Writes member profiles: load the touched rows, fold the batch, upsert them in one statement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, sql

from domain.projections import Entry, member_profiles
from domain.projections.member_profiles import ContributionRef, Profile, State
from services.projector.appliers import aliases_table_sql, as_json, load_aliases, save_aliases

PROFILE_COLUMNS = (
    ("member_id", "uuid"),
    ("display_name", "text"),
    ("handles", "text[]"),
    ("joined_at", "timestamptz"),
    ("bio", "text"),
    ("links", "text[]"),
    ("first_active_at", "timestamptz"),
    ("last_active_at", "timestamptz"),
    ("contributions_total", "integer"),
    ("contributions_by_kind", "jsonb"),
    ("introductions_made", "integer"),
    ("introductions_received", "integer"),
    ("mentions_given", "integer"),
    ("mentions_received", "integer"),
    ("recognitions_given", "integer"),
    ("recognitions_received", "integer"),
    ("merged_into", "uuid"),
    ("forgotten", "boolean"),
    ("updated_position", "bigint"),
)
NAMES = [name for name, _ in PROFILE_COLUMNS]


class MemberProfilesApplier:
    name = member_profiles.NAME
    version = member_profiles.VERSION
    tables: tuple[str, ...] = (
        "member_profiles",
        "member_profile_contributions",
        "member_profile_aliases",
    )

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        profiles, contributions, aliases = (sql.Identifier(schema, t) for t in self.tables)
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id uuid PRIMARY KEY, display_name text NOT NULL,
                handles text[] NOT NULL, joined_at timestamptz, bio text NOT NULL,
                links text[] NOT NULL, first_active_at timestamptz, last_active_at timestamptz,
                contributions_total integer NOT NULL, contributions_by_kind jsonb NOT NULL,
                introductions_made integer NOT NULL, introductions_received integer NOT NULL,
                mentions_given integer NOT NULL, mentions_received integer NOT NULL,
                recognitions_given integer NOT NULL, recognitions_received integer NOT NULL,
                merged_into uuid, forgotten boolean NOT NULL, updated_position bigint NOT NULL
            )""").format(profiles)
        )
        for column in (
            "last_active_at",
            "contributions_total",
            "recognitions_received",
            "introductions_made",
        ):
            await conn.execute(
                sql.SQL("CREATE INDEX ON {} ({} DESC, member_id)").format(
                    profiles, sql.Identifier(column)
                )
            )
        await conn.execute(sql.SQL("CREATE INDEX ON {} USING gin (handles)").format(profiles))
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                contribution_id uuid PRIMARY KEY, member_id uuid NOT NULL, kind text NOT NULL,
                retracted boolean NOT NULL
            )""").format(contributions)
        )
        await conn.execute(aliases_table_sql(aliases))

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry]
    ) -> None:
        profiles, contributions, aliases = (sql.Identifier(schema, t) for t in self.tables)
        state = State()
        state.contributions = await _load_contributions(
            conn, contributions, member_profiles.contribution_ids_needed(entries)
        )
        wanted = member_profiles.member_ids_needed(entries)
        wanted |= {ref.member_id for ref in state.contributions.values()}
        state.aliases = await load_aliases(conn, aliases, wanted)
        state.profiles = await _load_profiles(conn, profiles, wanted | set(state.aliases.values()))
        member_profiles.fold(state, entries)
        await _save_profiles(conn, profiles, [state.profiles[m] for m in state.dirty_profiles])
        await _save_contributions(
            conn, contributions, [state.contributions[c] for c in state.dirty_contributions]
        )
        await save_aliases(conn, aliases, state.new_aliases)


async def _load_profiles(
    conn: AsyncConnection[Any], table: sql.Composable, ids: set[UUID]
) -> dict[UUID, Profile]:
    if not ids:
        return {}
    query = sql.SQL("SELECT {} FROM {} WHERE member_id = ANY(%s)").format(
        sql.SQL(", ").join(map(sql.Identifier, NAMES)), table
    )
    cur = await conn.execute(query, [list(ids)])
    loaded = {}
    for row in await cur.fetchall():
        values = dict(zip(NAMES, row, strict=True))
        values["handles"], values["links"] = list(values["handles"]), list(values["links"])
        loaded[values["member_id"]] = Profile(**values)
    return loaded


async def _save_profiles(
    conn: AsyncConnection[Any], table: sql.Composable, rows: list[Profile]
) -> None:
    if not rows:
        return
    columns = sql.SQL(", ").join(map(sql.Identifier, NAMES))
    record = sql.SQL(", ").join(sql.SQL(f"{name} {kind}") for name, kind in PROFILE_COLUMNS)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(n)) for n in NAMES[1:]
    )
    query = sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT {columns} FROM jsonb_to_recordset(%s::jsonb) "
        "AS r({record}) ON CONFLICT (member_id) DO UPDATE SET {updates}"
    ).format(table=table, columns=columns, record=record, updates=updates)
    payload = [{name: getattr(p, name) for name in NAMES} for p in rows]
    await conn.execute(query, [as_json(payload)])


async def _load_contributions(
    conn: AsyncConnection[Any], table: sql.Composable, ids: set[UUID]
) -> dict[UUID, ContributionRef]:
    if not ids:
        return {}
    cur = await conn.execute(
        sql.SQL(
            "SELECT contribution_id, member_id, kind, retracted FROM {} "
            "WHERE contribution_id = ANY(%s)"
        ).format(table),
        [list(ids)],
    )
    return {row[0]: ContributionRef(*row) for row in await cur.fetchall()}


async def _save_contributions(
    conn: AsyncConnection[Any], table: sql.Composable, rows: list[ContributionRef]
) -> None:
    if not rows:
        return
    await conn.execute(
        sql.SQL(
            "INSERT INTO {} (contribution_id, member_id, kind, retracted) "
            "SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::boolean[]) "
            "ON CONFLICT (contribution_id) DO UPDATE SET retracted = excluded.retracted"
        ).format(table),
        [
            [r.contribution_id for r in rows],
            [r.member_id for r in rows],
            [r.kind for r in rows],
            [r.retracted for r in rows],
        ],
    )
