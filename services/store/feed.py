"""The global feed: every event in position order, read after a position, and woken by NOTIFY.

Apart from appends: a reader of the feed (a projection, the events endpoint, a follower)
never writes, and what it must be careful about is the horizon, below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import msgspec
import psycopg

from services.store.records import COLUMNS, FeedRecord, RecordedEvent, fetch
from services.store.sealed import Sealer

NOTIFY_CHANNEL = "ledger_events"
NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}', %s)"

# Appends commit in any order, so a reader must not pass a position whose lower
# neighbours may still commit. Positions rise with the xids of the appends that took
# them, so a reader first asks for the horizon (the oldest xid among the appends in
# flight, `ledger_horizon()`, in a statement of its own), then reads only below the
# lowest position written at or above it. docs/ledger.md gives the whole argument.
#
# Written for the planner: `position + 0` keeps it off a walk of the primary key for
# min(), and the upper bound (a no-op: rows of later xids are invisible anyway) makes the
# condition a range, estimated as a few rows even in a generic plan, so it takes the
# index on xid.
HORIZON = "SELECT ledger_horizon()::text"

_BOUND = """
    SELECT coalesce(min(h.position + 0), 9223372036854775807)
    FROM events h
    WHERE h.xid >= %(horizon)s::xid8
      AND h.xid < pg_snapshot_xmax(pg_current_snapshot())
"""

_READ_FEED = f"""
    SELECT {COLUMNS}
    FROM events
    WHERE position > %(after)s
      AND position < ({_BOUND})
      AND (%(types)s::text[] IS NULL OR type = ANY (%(types)s::text[]))
    ORDER BY position
    LIMIT %(limit)s
"""

_READ_FEED_FOR_FOLDS = f"""
    SELECT position, event_id, type, schema_version, data::text, occurred_at
    FROM events
    WHERE position > %(after)s
      AND position < ({_BOUND})
    ORDER BY position
    LIMIT %(limit)s
"""

# How long the first event after each position has waited: a projection's lag in time.
_WAITING = """
    SELECT w.after, extract(epoch FROM now() - e.recorded_at)
    FROM unnest(%(positions)s::bigint[]) AS w(after)
    CROSS JOIN LATERAL (
        SELECT recorded_at
        FROM events
        WHERE position > w.after
        ORDER BY position
        LIMIT 1
    ) AS e
"""


async def readable_head(conn: psycopg.AsyncConnection[Any]) -> int:
    """The highest position a feed reader can reach now: every event up to it has committed."""
    cur = await conn.execute("SELECT ledger_head()", prepare=True)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def read_feed_on(
    conn: psycopg.AsyncConnection[Any],
    *,
    after: int,
    limit: int,
    types: Sequence[str] | None = None,
) -> list[RecordedEvent]:
    """Events after `after` in position order, never past one that may still commit."""
    horizon = await _horizon(conn)
    params = {"after": after, "limit": limit, "types": list(types) if types else None}
    return await fetch(conn, _READ_FEED, {**params, "horizon": horizon})


async def read_feed_for_folds(
    conn: psycopg.AsyncConnection[Any], sealer: Sealer, *, after: int, limit: int
) -> list[FeedRecord]:
    """`read_feed_on` for projections: the same rows, only the columns a fold uses, opened
    for a fold (an erased member's fields as blanks)."""
    horizon = await _horizon(conn)
    cur = await conn.execute(
        _READ_FEED_FOR_FOLDS, {"after": after, "limit": limit, "horizon": horizon}, prepare=True
    )
    rows = await cur.fetchall()
    opened = await sealer.open_for_folds(conn, [(row[1], row[2], row[4].encode()) for row in rows])
    return [
        FeedRecord(
            position=position,
            event_id=event_id,
            type=type_,
            schema_version=version,
            data=msgspec.Raw(data),
            occurred_at=occurred_at,
        )
        for (position, event_id, type_, version, _, occurred_at), data in zip(
            rows, opened, strict=True
        )
    ]


async def waiting_seconds(
    conn: psycopg.AsyncConnection[Any], positions: Sequence[int]
) -> dict[int, float]:
    """For each position, the seconds since the first event after it was recorded;
    positions with no event after them are absent."""
    cur = await conn.execute(_WAITING, {"positions": list(positions)})
    return {int(after): float(seconds) for after, seconds in await cur.fetchall()}


async def _horizon(conn: psycopg.AsyncConnection[Any]) -> str:
    cur = await conn.execute(HORIZON, prepare=True)
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def listen(
    conninfo: str, on_listening: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[int]:
    """Yield the newest position each time an append commits (LISTEN/NOTIFY); `on_listening`
    runs once LISTEN is in place, before the first notice (those sent meanwhile wait)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        if on_listening is not None:
            await on_listening()
        async for notice in conn.notifies():
            yield int(notice.payload)
