"""The projector's progress, announced with NOTIFY so that readers waiting for it wake.

A live checkpoint that moves (or a rebuild that goes live) sends `<projection>:<position>`
on PROGRESS_CHANNEL in the same transaction, so the notice arrives only once the read
model holds the rows (NOTIFY is delivered at commit, and not at all on rollback).
Readers that wait for `min_position` LISTEN here (services/api/watch.py), one connection
per API process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg

PROGRESS_CHANNEL = "ledger_projections"
NOTIFY_PROGRESS = f"SELECT pg_notify('{PROGRESS_CHANNEL}', %(name)s || ':' || %(position)s)"


async def announce(conn: psycopg.AsyncConnection[Any], name: str, position: int) -> None:
    """Within the caller's transaction: tell listeners `name` reached `position` at commit."""
    await conn.execute(NOTIFY_PROGRESS, {"name": name, "position": str(position)}, prepare=True)


async def listen_progress(
    conninfo: str, on_listening: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[str]:
    """Yield each progress notice's payload, on a connection of its own; `on_listening`
    runs once LISTEN is in place, before the first notice is read (none is lost meanwhile:
    they wait on the connection)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f"LISTEN {PROGRESS_CHANNEL}")
        if on_listening is not None:
            await on_listening()
        async for notice in conn.notifies():
            yield notice.payload


def parse_progress(payload: str) -> tuple[str, int] | None:
    """(projection, position) from a notice; None for anything else on the channel."""
    name, _, position = payload.rpartition(":")
    if not name or not position.isascii() or not position.isdigit():
        return None
    return name, int(position)
