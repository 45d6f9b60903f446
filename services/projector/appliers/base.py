"""What every applier is, and what it may remember of a build between batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

from psycopg import AsyncConnection, sql

from domain.projections import Entry

Row = TypeVar("Row")
Key = TypeVar("Key")


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
