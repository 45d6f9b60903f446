"""Appliers: load the rows a batch touches, let the domain fold it, write back the changes.

Each build of a projection lives in a schema of its own; the runner creates it, calls
`create_tables`, then `apply` inside transactions it owns (with its checkpoint).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from domain.projections import Entry


class Applier(Protocol):
    name: str
    version: int
    tables: tuple[str, ...]

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None: ...

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry]
    ) -> None: ...


_encoder = msgspec.json.Encoder()


def as_json(rows: Any) -> str:
    """One parameter for a whole batch of rows (read back with jsonb_to_recordset)."""
    return _encoder.encode(rows).decode()


async def load_aliases(
    conn: AsyncConnection[Any], table: sql.Composable, member_ids: Iterable[UUID]
) -> dict[UUID, UUID]:
    """duplicate -> survivor for the given members, following chains of merges."""
    aliases: dict[UUID, UUID] = {}
    wanted = set(member_ids)
    while wanted:
        cur = await conn.execute(
            sql.SQL("SELECT duplicate_id, survivor_id FROM {} WHERE duplicate_id = ANY(%s)").format(
                table
            ),
            [list(wanted)],
        )
        found = dict(await cur.fetchall())
        aliases.update(found)
        wanted = set(found.values()) - aliases.keys()
    return aliases


async def save_aliases(
    conn: AsyncConnection[Any], table: sql.Composable, new: dict[UUID, UUID]
) -> None:
    if not new:
        return
    await conn.execute(
        sql.SQL(
            "INSERT INTO {} (duplicate_id, survivor_id) "
            "SELECT * FROM unnest(%s::uuid[], %s::uuid[]) "
            "ON CONFLICT (duplicate_id) DO UPDATE SET survivor_id = excluded.survivor_id"
        ).format(table),
        [list(new), list(new.values())],
    )


def aliases_table_sql(table: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE {} (duplicate_id uuid PRIMARY KEY, survivor_id uuid NOT NULL)"
    ).format(table)


def _appliers() -> tuple[Applier, ...]:
    from services.projector.appliers.connections import ConnectionsApplier
    from services.projector.appliers.contribution_counts import ContributionCountsApplier
    from services.projector.appliers.member_profiles import MemberProfilesApplier

    return (MemberProfilesApplier(), ContributionCountsApplier(), ConnectionsApplier())


APPLIERS: tuple[Applier, ...] = _appliers()
