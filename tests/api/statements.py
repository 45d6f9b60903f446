"""Counting the statements an app's pool runs: a count of queries the database cannot fake."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from services import bootstrap


class Statements:
    """Every statement the app's pool runs, by text: a count the database cannot fake."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def naming(self, table: str) -> int:
        return sum(table in text for text in self.texts)

    def reading_checkpoints(self) -> int:
        return sum("projection_builds" in text for text in self.texts)


def count_statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    """Make every app started from now on count its pool's statements (before the app starts)."""
    seen = Statements()

    class CountingCursor(psycopg.AsyncCursor[Any]):
        async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            seen.texts.append(str(query))
            return await super().execute(query, *args, **kwargs)

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        conn.cursor_factory = CountingCursor

    def pool(url: str, *, size: int = bootstrap.POOL_SIZE) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs={"autocommit": True},
            configure=configure,
            open=False,
        )

    monkeypatch.setattr(bootstrap, "pool", pool)
    return seen
