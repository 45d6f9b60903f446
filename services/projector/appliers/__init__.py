"""Appliers: load the rows a batch touches, let the domain fold it, write back what changed.

Each build of a projection lives in a schema of its own; the runner creates it, calls
`create_tables`, then `apply` inside transactions it owns (with its checkpoint), so an
applier never commits. Rows travel as one JSON value per statement, both ways
(`json_to_recordset` in, `json_agg` out): msgspec encodes and decodes a whole batch at
C speed, where adapting each cell in Python would cost more than the database's work.

Between batches an applier remembers (`Memory`) what is bounded by the community's
size rather than the ledger's: every alias, and for profiles the rows themselves. A
build's secondary indexes are made by `create_indexes` when it has caught up, just
before it goes live, rather than maintained row by row through the catch-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from domain.projections import Entry

Columns = tuple[tuple[str, str], ...]
"""(name, SQL type) in table order"""

Row = TypeVar("Row")
Key = TypeVar("Key")

# Reads and deletes that join a batch's keys run unprepared (prepare=False): once
# psycopg prepares a statement, PostgreSQL may settle on a generic plan that, guessing
# 100 rows from the function, scans the whole table instead of probing its index.


class Applier(Protocol):
    """Builds one read model; the runner owns schemas, transactions and checkpoints."""

    name: str
    version: int
    """Bumped when the tables or the fold change: the runner then rebuilds from zero."""
    tables: tuple[str, ...]
    """Every table `create_tables` makes (unqualified); the runner swaps them in together."""

    async def create_tables(self, conn: AsyncConnection[Any], schema: str) -> None: ...

    async def create_indexes(self, conn: AsyncConnection[Any], schema: str) -> None:
        """The indexes readers need beyond the primary keys; idempotent."""

    async def apply(
        self, conn: AsyncConnection[Any], schema: str, entries: Sequence[Entry], *, after: int
    ) -> None:
        """Fold `entries` into the build, whose checkpoint stands at `after`."""


class Memory(Generic[Key, Row]):
    """What an applier keeps of one build between batches: all its aliases, and some rows.

    It holds only while the build is where this memory left it: when a batch starts
    anywhere else (another runner moved the build, or a transaction failed after a fold
    had changed these rows in place) everything is forgotten and loaded again.
    """

    def __init__(self, keep_rows: int = 0) -> None:
        self.keep_rows = keep_rows
        """At most this many rows are kept; beyond, they are dropped (memory stays bounded)."""
        self.position: int | None = None
        self.aliases: dict[UUID, UUID] | None = None
        self.rows: dict[Key, Row] = {}
        self.complete = False
        """Every row of the table is in `rows`: a key missing there is missing in the table."""

    def begin(self, after: int) -> None:
        if self.position != after:
            self.aliases, self.rows = None, {}
            # A build at position 0 has applied nothing: its tables are empty.
            self.complete = after == 0
        self.position = None  # until `end`: a fold in progress is changing the rows

    def end(self, position: int) -> None:
        if len(self.rows) > self.keep_rows:
            self.rows, self.complete = {}, False
        self.position = position

    async def known_aliases(
        self, conn: AsyncConnection[Any], table: sql.Identifier
    ) -> dict[UUID, UUID]:
        """Every duplicate -> survivor of the build: one row per merge, fewer than members."""
        if self.aliases is None:
            query = sql.SQL("SELECT duplicate_id, survivor_id FROM {}").format(table)
            cur = await conn.execute(query)
            self.aliases = dict(await cur.fetchall())
        return self.aliases


class Memories(Generic[Key, Row]):
    """One Memory per build schema: a rebuild feeds the live build and the new one in turn."""

    def __init__(self, keep_rows: int = 0, builds: int = 2) -> None:
        self.keep_rows, self.builds = keep_rows, builds
        self._by_schema: dict[str, Memory[Key, Row]] = {}

    def of(self, schema: str) -> Memory[Key, Row]:
        if (memory := self._by_schema.get(schema)) is None:
            memory = self._by_schema[schema] = Memory(self.keep_rows)
            while len(self._by_schema) > self.builds:
                del self._by_schema[next(iter(self._by_schema))]
        return memory


_encoder = msgspec.json.Encoder()


def as_json(rows: Any) -> str:
    return _encoder.encode(rows).decode()


def key_rows(key: Columns, keys: Iterable[tuple[Any, ...]]) -> sql.Composed:
    """Keys sent as one JSON array of arrays, read back as a relation named `k`."""
    return sql.SQL("(SELECT {} FROM json_array_elements(%s::json) AS j) AS k").format(
        sql.SQL(", ").join(
            sql.SQL("(j->>{})::{} AS {}").format(
                sql.Literal(i), sql.SQL(kind), sql.Identifier(name)
            )
            for i, (name, kind) in enumerate(key)
        )
    )


def uuids(ids: Iterable[UUID]) -> str:
    """A `uuid[]` literal: one text parameter rather than thousands of adapted values."""
    return "{" + _encoder.encode(list(ids))[1:-1].decode() + "}"  # ["a","b"] -> {"a","b"}


async def fetch(
    conn: AsyncConnection[Any], query: sql.Composable, params: Sequence[Any], row: type[Row]
) -> list[Row]:
    """The query's rows decoded into `row` (a Struct whose fields are the columns)."""
    wrapped = sql.SQL("SELECT coalesce(json_agg(r), '[]')::text FROM ({}) AS r").format(query)
    cur = await conn.execute(wrapped, params, prepare=False)
    found = await cur.fetchone()
    return msgspec.json.decode(found[0] if found else "[]", type=list[row])  # type: ignore[valid-type]


def names(columns: Columns, prefix: str | None = None) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.Identifier(prefix, name) if prefix else sql.Identifier(name) for name, _ in columns
    )


def record(columns: Columns) -> sql.Composed:
    """The column definitions `json_to_recordset` needs to read rows back."""
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in columns
    )


async def upsert(
    conn: AsyncConnection[Any],
    table: sql.Identifier,
    columns: Columns,
    key: Columns,
    rows: Sequence[object],
) -> None:
    """Write whole rows (objects whose fields are the columns) in one statement."""
    if not rows:
        return
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(name))
        for name, _ in columns
        if name not in {k for k, _ in key}
    )
    query = sql.SQL("""
        INSERT INTO {table} ({names})
        SELECT {names}
        FROM json_to_recordset(%s::json) AS r({record})
        ON CONFLICT ({key}) DO UPDATE SET {updates}
    """).format(
        table=table, names=names(columns), record=record(columns), key=names(key), updates=updates
    )
    await conn.execute(query, [as_json(rows)])


async def delete(
    conn: AsyncConnection[Any], table: sql.Identifier, key: Columns, keys: Iterable[tuple[Any, ...]]
) -> None:
    """Delete the rows with the given keys (absent ones are no matter) in one statement."""
    rows = list(keys)
    if not rows:
        return
    matches = sql.SQL(" AND ").join(
        sql.SQL("t.{0} = k.{0}").format(sql.Identifier(name)) for name, _ in key
    )
    query = sql.SQL("""
        DELETE FROM {table} AS t
        USING {keys}
        WHERE {matches}
    """).format(table=table, keys=key_rows(key, rows), matches=matches)
    await conn.execute(query, [as_json(rows)], prepare=False)


async def select_by_key(
    conn: AsyncConnection[Any],
    table: sql.Identifier,
    columns: Columns,
    key: Columns,
    keys: Iterable[tuple[Any, ...]],
    row: type[Row],
    members: Iterable[UUID] = (),
) -> list[Row]:
    """The rows with the given keys, plus every row naming one of `members` in a uuid key column.

    A row can come twice (found both ways); callers key them by their primary key.
    """
    query = sql.SQL("""
        SELECT {columns}
        FROM {table} AS t
        JOIN {keys} USING ({key})
    """).format(columns=names(columns, "t"), table=table, keys=key_rows(key, ()), key=names(key))
    params: list[Any] = [as_json(list(keys))]
    if members := list(members):
        for name, kind in key:
            if kind == "uuid":
                query += sql.SQL(
                    " UNION ALL SELECT {} FROM {} AS t WHERE {} = ANY(%s::uuid[])"
                ).format(names(columns, "t"), table, sql.Identifier("t", name))
                params.append(uuids(members))
    return await fetch(conn, query, params, row)


async def select_by_ids(
    conn: AsyncConnection[Any],
    table: sql.Identifier,
    columns: Columns,
    ids: Iterable[UUID],
    row: type[Row],
) -> list[Row]:
    """The rows whose first column, a uuid primary key, is one of `ids`."""
    query = sql.SQL("SELECT {} FROM {} WHERE {} = ANY(%s::uuid[])").format(
        names(columns), table, sql.Identifier(columns[0][0])
    )
    return await fetch(conn, query, [uuids(ids)], row)


ALIAS_COLUMNS: Columns = (("duplicate_id", "uuid"), ("survivor_id", "uuid"))


async def create_aliases_table(conn: AsyncConnection[Any], table: sql.Identifier) -> None:
    await conn.execute(
        sql.SQL("""
        CREATE TABLE {} (
            duplicate_id uuid PRIMARY KEY,
            survivor_id  uuid NOT NULL
        )""").format(table)
    )


async def create_index(conn: AsyncConnection[Any], schema: str, table: str, column: str) -> None:
    """An index named as PostgreSQL would name it, so builds made before it are not doubled."""
    await conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{table}_{column}_idx"),
            sql.Identifier(schema, table),
            sql.Identifier(column),
        )
    )


async def save_aliases(
    conn: AsyncConnection[Any],
    table: sql.Identifier,
    memory: Memory[Any, Any],
    added: dict[UUID, UUID],
) -> None:
    """Write the batch's merges, and remember them."""
    if memory.aliases is not None:
        memory.aliases.update(added)
    rows = [{"duplicate_id": d, "survivor_id": s} for d, s in added.items()]
    await upsert(conn, table, ALIAS_COLUMNS, ALIAS_COLUMNS[:1], rows)


def _appliers() -> tuple[Applier, ...]:
    # Imported here: each applier module imports the helpers above.
    from services.projector.appliers.connections import ConnectionsApplier
    from services.projector.appliers.contribution_counts import ContributionCountsApplier
    from services.projector.appliers.interaction_counts import InteractionCountsApplier
    from services.projector.appliers.member_profiles import MemberProfilesApplier

    return (
        MemberProfilesApplier(),
        ContributionCountsApplier(),
        ConnectionsApplier(),
        InteractionCountsApplier(),
    )


APPLIERS: tuple[Applier, ...] = _appliers()
