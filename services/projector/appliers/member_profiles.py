"""Writes member profiles: load the rows a batch touches, fold it, upsert what changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, sql

from domain.projections import Aliases, Entry, member_profiles
from domain.projections.member_profiles import ContributionRef, Profile
from services.projector.appliers import (
    Columns,
    create_aliases_table,
    load_aliases,
    save_aliases,
    select_by_ids,
    upsert,
    uuids,
)

PROFILE_COLUMNS: Columns = (
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
REF_COLUMNS: Columns = (
    ("contribution_id", "uuid"),
    ("member_id", "uuid"),
    ("kind", "text"),
    ("retracted", "boolean"),
)


class MemberProfilesApplier:
    name = member_profiles.NAME
    version = member_profiles.VERSION
    tables: tuple[str, ...] = (
        "member_profiles",
        "member_profile_contributions",
        "member_profile_aliases",
    )

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None:
        profiles, refs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                member_id              uuid PRIMARY KEY,
                display_name           text NOT NULL,
                handles                text[] NOT NULL,
                joined_at              timestamptz,
                bio                    text NOT NULL,
                links                  text[] NOT NULL,
                first_active_at        timestamptz,
                last_active_at         timestamptz,
                contributions_total    integer NOT NULL,
                contributions_by_kind  jsonb NOT NULL,
                introductions_made     integer NOT NULL,
                introductions_received integer NOT NULL,
                mentions_given         integer NOT NULL,
                mentions_received      integer NOT NULL,
                recognitions_given     integer NOT NULL,
                recognitions_received  integer NOT NULL,
                merged_into            uuid,
                forgotten              boolean NOT NULL,
                updated_position       bigint NOT NULL
            )""").format(profiles)
        )
        # Only the primary key: an index on what lists sort by (counts, last active) would
        # be rewritten with most rows of every batch, at a cost to catch-up speed; a page
        # sorts the community's profiles quickly enough without one.
        await conn.execute(
            sql.SQL("""
            CREATE TABLE {} (
                contribution_id uuid PRIMARY KEY,
                member_id       uuid NOT NULL,
                kind            text NOT NULL,
                retracted       boolean NOT NULL
            )""").format(refs)
        )
        await create_aliases_table(conn, aliases)

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry]
    ) -> None:
        profiles, refs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        state = member_profiles.State()
        needed = member_profiles.contributions_needed(entries)
        found = await select_by_ids(conn, refs, REF_COLUMNS, needed, ContributionRef)
        state.contributions = {ref.contribution_id: ref for ref in found}
        wanted = member_profiles.members_needed(entries)
        wanted |= {ref.member_id for ref in state.contributions.values()}
        if starts := member_profiles.forgetting(entries):
            wanted |= await _merged_into(conn, aliases, starts)
        state.aliases = Aliases(await load_aliases(conn, aliases, wanted))
        wanted |= set(state.aliases.known.values())
        loaded = await select_by_ids(conn, profiles, PROFILE_COLUMNS, wanted, Profile)
        state.profiles = {profile.member_id: profile for profile in loaded}
        member_profiles.fold(state, entries)
        changed = [state.profiles[m] for m in state.changed_profiles]
        await upsert(conn, profiles, PROFILE_COLUMNS, PROFILE_COLUMNS[:1], changed)
        changed_refs = [state.contributions[c] for c in state.changed_contributions]
        await upsert(conn, refs, REF_COLUMNS, REF_COLUMNS[:1], changed_refs)
        await save_aliases(conn, aliases, state.aliases.added)


async def _merged_into(
    conn: AsyncConnection[Any], table: sql.Identifier, members: set[UUID]
) -> set[UUID]:
    """Every member merged, directly or down a chain, into one of `members`."""
    query = sql.SQL("""
        WITH RECURSIVE merged (member_id) AS (
            SELECT duplicate_id FROM {aliases} WHERE survivor_id = ANY(%s::uuid[])
            UNION
            SELECT a.duplicate_id
            FROM {aliases} AS a
            JOIN merged AS m ON a.survivor_id = m.member_id
        )
        SELECT member_id FROM merged
    """).format(aliases=table)
    cur = await conn.execute(query, [uuids(members)], prepare=False)
    return {member_id for (member_id,) in await cur.fetchall()}
