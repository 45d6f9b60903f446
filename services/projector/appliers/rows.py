"""The SQL an applier writes with: rows travel as one JSON value per statement, both ways.

`json_to_recordset` in, `json_agg` out: msgspec encodes and decodes a whole batch at C
speed, where adapting each cell in Python would cost more than the database's work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql

from services.projector.appliers.base import Memory

Columns = tuple[tuple[str, str], ...]
"""(name, SQL type) in table order"""

Row = TypeVar("Row")

# Reads and deletes that join a batch's keys run unprepared (prepare=False): once
# psycopg prepares a statement, PostgreSQL may settle on a generic plan that, guessing
# 100 rows from the function, scans the whole table instead of probing its index.

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


async def add_counts(
    conn: AsyncConnection[Any],
    table: sql.Identifier,
    columns: Columns,
    key: Columns,
    changes: list[tuple[Any, ...]],
    *,
    never_negative: bool = False,
) -> None:
    """Add changes to the stored counts (a missing row counts from zero); drop rows left all zero.

    Rows go as JSON arrays, in column order. `never_negative`: the stored counts never go
    below zero, so only a row a change lowered can be left at zero, and only those are
    looked at (a batch of catch-up mostly adds). Counts that may dip below zero between
    batches (community_health's moves) leave it off."""
    if not changes:
        return
    counted = [name for name, _ in columns if name not in {k for k, _ in key}]
    query = sql.SQL("""
        INSERT INTO {table} AS t ({names})
        SELECT {names}
        FROM json_to_recordset(%s::json) AS r({record})
        ON CONFLICT ({key}) DO UPDATE SET {sums}
    """).format(
        table=table,
        names=names(columns),
        record=record(columns),
        key=names(key),
        sums=sql.SQL(", ").join(
            sql.SQL("{0} = t.{0} + excluded.{0}").format(sql.Identifier(name)) for name in counted
        ),
    )
    as_objects = [dict(zip([name for name, _ in columns], row, strict=True)) for row in changes]
    await conn.execute(query, [as_json(as_objects)])
    lowered = [
        row[: len(key)]
        for row in changes
        if not never_negative or any(n < 0 for n in row[len(key) :])
    ]
    if not lowered:
        return
    zero = sql.SQL(" AND ").join(sql.SQL("t.{} = 0").format(sql.Identifier(n)) for n in counted)
    matches = sql.SQL(" AND ").join(
        sql.SQL("t.{0} = k.{0}").format(sql.Identifier(name)) for name, _ in key
    )
    await conn.execute(
        sql.SQL("DELETE FROM {} AS t USING {} WHERE {} AND {}").format(
            table, key_rows(key, ()), matches, zero
        ),
        [as_json(lowered)],
        prepare=False,
    )


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
