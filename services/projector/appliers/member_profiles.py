"""Writes member profiles: load the rows a batch touches, fold it, upsert what changed.

Profiles number as many as members, whatever the ledger's length, so the applier keeps
them between batches (up to PROFILES_KEPT): a catch-up reads none back from the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, sql

from domain.projections import Aliases, Entry, member_profiles
from domain.projections.member_profiles import ContributionRef, Profile
from services.projector.appliers.base import Memories
from services.projector.appliers.rows import (
    Columns,
    create_aliases_table,
    create_index,
    save_aliases,
    select_by_ids,
    upsert,
)

PROFILES_KEPT = 200_000
"""Profiles kept in memory between batches, about 1 KiB each; a larger community reloads."""

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

    def __init__(self) -> None:
        # The version this applier builds, fixed when a runner makes it.
        self.version = type(self).version
        self.memories: Memories[UUID, Profile] = Memories(keep_rows=PROFILES_KEPT)

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

    async def create_indexes(self, conn: AsyncConnection[Any], schema: str) -> None:
        await create_index(conn, schema, "member_profile_aliases", "survivor_id")

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry], *, after: int
    ) -> None:
        profiles, refs, aliases = (sql.Identifier(schema, t) for t in self.tables)
        memory = self.memories.of(schema)
        memory.begin(after)
        state = member_profiles.State()
        needed = member_profiles.contributions_needed(entries)
        found = await select_by_ids(conn, refs, REF_COLUMNS, needed, ContributionRef)
        state.contributions = {ref.contribution_id: ref for ref in found}
        state.aliases = Aliases(await memory.known_aliases(conn, aliases))
        if not memory.complete:
            wanted = _wanted(state, entries)
            missing = wanted - memory.rows.keys()
            loaded = await select_by_ids(conn, profiles, PROFILE_COLUMNS, missing, Profile)
            memory.rows.update((profile.member_id, profile) for profile in loaded)
        state.profiles = memory.rows
        member_profiles.fold(state, entries)
        changed = [state.profiles[m] for m in state.changed_profiles]
        await upsert(conn, profiles, PROFILE_COLUMNS, PROFILE_COLUMNS[:1], changed)
        changed_refs = [state.contributions[c] for c in state.changed_contributions]
        await upsert(conn, refs, REF_COLUMNS, REF_COLUMNS[:1], changed_refs)
        await save_aliases(conn, aliases, memory, state.aliases.added)
        memory.end(entries[-1].position)


def _wanted(state: member_profiles.State, entries: Sequence[Entry]) -> set[UUID]:
    """The profiles the fold will touch: members named, their survivors, and for a
    forget, every member merged (down a chain) into the one forgotten."""
    aliases = state.aliases
    wanted = member_profiles.members_needed(entries)
    wanted |= {ref.member_id for ref in state.contributions.values()}
    if starts := member_profiles.forgetting(entries):
        roots = starts | {aliases.resolve(m) for m in starts}
        wanted |= {d for d in aliases.known if aliases.resolve(d) in roots}
    return wanted | {aliases.resolve(m) for m in wanted}
