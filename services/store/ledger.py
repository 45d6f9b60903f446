"""The ledger store: append events with their guarantees, and read them back three ways.

Every guarantee of an append (expected versions, cross-stream conditions, idempotency,
atomic batches, gap-free positions) is enforced inside one server-side function,
`ledger_append` (migrations/versions/0005_readable_append.py), so an append is one
round trip and the lock that orders positions is held for as short a time as possible.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from domain.codec import decode_event
from domain.errors import (
    AppendConditionFailed,
    DuplicateEventIds,
    IdempotencyKeyReused,
    WrongExpectedVersion,
)
from domain.events import Event
from services.metrics import APPEND_SECONDS, APPENDED_EVENTS

log = logging.getLogger("community_ledger.store")

NOTIFY_CHANNEL = "ledger_events"
_NOTIFY = f"SELECT pg_notify('{NOTIFY_CHANNEL}', %s)"


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event on its way into the ledger: the payload already encoded, the envelope beside it."""

    event_id: UUID
    type: str
    data: msgspec.Raw
    stream: str
    occurred_at: datetime
    tags: tuple[str, ...] = ()
    schema_version: int = 1
    metadata: dict[str, Any] = {}


class FeedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Just what a fold needs of an event: a projection reads millions of them, and
    parsing metadata, tags and a second timestamp per row cost it a sixth of its time."""

    position: int
    event_id: UUID
    type: str
    schema_version: int
    data: msgspec.Raw
    occurred_at: datetime

    def decode(self) -> Event:
        return decode_event(self.type, self.schema_version, bytes(self.data))


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    event_id: UUID
    type: str
    schema_version: int
    data: msgspec.Raw
    metadata: dict[str, Any]
    stream: str
    stream_version: int
    tags: tuple[str, ...]
    occurred_at: datetime
    recorded_at: datetime

    def decode(self) -> Event:
        return decode_event(self.type, self.schema_version, bytes(self.data))


class Query(msgspec.Struct, frozen=True, kw_only=True):
    """Events carrying all of `tags` and, when `types` is given, of one of those types."""

    tags: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


class AppendCondition(msgspec.Struct, frozen=True, kw_only=True):
    """Fail the append if any event matching one of `fail_if_events_match` came after `after`."""

    fail_if_events_match: tuple[Query, ...]
    after: int


class Appended(msgspec.Struct, frozen=True, kw_only=True):
    positions: tuple[int, ...]
    event_ids: tuple[UUID, ...]
    replayed: bool = False
    """True when this answers a retry: nothing was written this time."""


class StoredAnswer(msgspec.Struct, frozen=True, kw_only=True):
    fingerprint: str
    answer: Appended


_encoder = msgspec.json.Encoder()

_FIELDS = (
    "position",
    "event_id",
    "type",
    "schema_version",
    "data::text",
    "metadata",
    "stream",
    "stream_version",
    "tags",
    "occurred_at",
    "recorded_at",
)
_COLUMNS = ", ".join(_FIELDS)

READ_STREAM = f"""
    SELECT {_COLUMNS}
    FROM events
    WHERE stream = %(stream)s
      AND stream_version >= %(from_version)s
    ORDER BY stream_version
    LIMIT %(limit)s
"""

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
    SELECT {_COLUMNS}
    FROM events
    WHERE position > %(after)s
      AND position < ({_BOUND})
      AND (%(types)s::text[] IS NULL OR type = ANY (%(types)s::text[]))
    ORDER BY position
    LIMIT %(limit)s
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


_READ_FEED_FOR_FOLDS = f"""
    SELECT position, event_id, type, schema_version, data::text, occurred_at
    FROM events
    WHERE position > %(after)s
      AND position < ({_BOUND})
    ORDER BY position
    LIMIT %(limit)s
"""


async def read_feed_for_folds(
    conn: psycopg.AsyncConnection[Any], *, after: int, limit: int
) -> list[FeedRecord]:
    """`read_feed_on` for projections: the same rows, only the columns a fold uses."""
    horizon = await _horizon(conn)
    cur = await conn.execute(
        _READ_FEED_FOR_FOLDS, {"after": after, "limit": limit, "horizon": horizon}, prepare=True
    )
    return [
        FeedRecord(
            position=position,
            event_id=event_id,
            type=type_,
            schema_version=version,
            data=msgspec.Raw(data.encode()),
            occurred_at=occurred_at,
        )
        for position, event_id, type_, version, data, occurred_at in await cur.fetchall()
    ]


async def _horizon(conn: psycopg.AsyncConnection[Any]) -> str:
    cur = await conn.execute(HORIZON, prepare=True)
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


# Walks event_tags' primary key (tag, position) backwards: newest first, no sort,
# and a deep page costs what the first one does (the cursor is a position, not an OFFSET).
READ_TAGGED = f"""
    SELECT {", ".join(f"e.{field}" for field in _FIELDS)}
    FROM event_tags t
    JOIN events e ON e.position = t.position
    WHERE t.tag = %(tag)s
      AND t.position < %(before)s
      AND (%(types)s::text[] IS NULL OR e.type = ANY (%(types)s::text[]))
      AND (%(since)s::timestamptz IS NULL OR e.occurred_at >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR e.occurred_at < %(until)s)
    ORDER BY t.position DESC
    LIMIT %(limit)s
"""

# Several tags (a member and those merged into it): the walk above once per tag, each
# stopping at `limit`, then the newest `limit` of them all. An event among the newest
# `limit` overall is among the newest `limit` of every tag it carries, so a page costs
# one tag's page per tag, however deep; IN keeps once an event that carries two of the
# tags (a mention between a member and its duplicate).
READ_TAGGED_ANY = f"""
    SELECT {_COLUMNS}
    FROM events
    WHERE position IN (
        SELECT found.position
        FROM unnest(%(tags)s::text[]) AS wanted(tag)
        CROSS JOIN LATERAL (
            SELECT t.position
            FROM event_tags t
            JOIN events e ON e.position = t.position
            WHERE t.tag = wanted.tag
              AND t.position < %(before)s
              AND (%(types)s::text[] IS NULL OR e.type = ANY (%(types)s::text[]))
              AND (%(since)s::timestamptz IS NULL OR e.occurred_at >= %(since)s)
              AND (%(until)s::timestamptz IS NULL OR e.occurred_at < %(until)s)
            ORDER BY t.position DESC
            LIMIT %(limit)s
        ) AS found
    )
    ORDER BY position DESC
    LIMIT %(limit)s
"""

# Rare types (merges) carrying any of the tags, oldest first. EXISTS rather than a walk
# of each tag lets the planner start from the rarer side: the type index when the
# members have many events, their tags when they have few.
READ_TAGGED_OF_TYPES = f"""
    SELECT {_COLUMNS}
    FROM events e
    WHERE e.type = ANY (%(types)s::text[])
      AND EXISTS (
          SELECT 1
          FROM event_tags t
          WHERE t.position = e.position
            AND t.tag = ANY (%(tags)s::text[])
      )
    ORDER BY e.position
"""

READ_EVENT = f"SELECT {_COLUMNS} FROM events WHERE event_id = %(event_id)s"


def _recorded(row: tuple[Any, ...]) -> RecordedEvent:
    (
        position,
        event_id,
        type_,
        version,
        data,
        metadata,
        stream,
        stream_version,
        tags,
        occurred_at,
        recorded_at,
    ) = row
    return RecordedEvent(
        position=position,
        event_id=event_id,
        type=type_,
        schema_version=version,
        data=msgspec.Raw(data.encode()),
        metadata=metadata,
        stream=stream,
        stream_version=stream_version,
        tags=tuple(tags),
        occurred_at=occurred_at,
        recorded_at=recorded_at,
    )


RACED = {"events_event_id_key", "events_stream_version_key", "idempotency_keys_pkey"}
RACE_RETRIES = 3


class Ledger:
    """The one way in and out of the events table; one instance per connection pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._notified_up_to = 0
        self._notifying = False
        self._notify_again = False

    async def _notify(self, conn: psycopg.AsyncConnection[Any], position: int) -> None:
        """NOTIFY followers, after the append has committed, in a transaction of its own.

        Not from inside the append's transaction: there it would take PostgreSQL's
        notify-queue lock, which is held across the commit's WAL flush, and concurrent
        appends would commit one at a time again. Appends that commit while a NOTIFY is
        on its way leave it to send one more when it is done: under load, one NOTIFY
        serves many appends. A process that dies in between leaves followers to their
        polling, as does a NOTIFY that fails (the append stands; it is not retried).
        """
        self._notified_up_to = max(self._notified_up_to, position)
        if self._notifying:
            self._notify_again = True
            return
        self._notifying = True
        try:
            while True:
                self._notify_again = False
                await conn.execute(_NOTIFY, [str(self._notified_up_to)], prepare=True)
                if not self._notify_again:
                    return
        except psycopg.Error as error:
            log.warning("NOTIFY after an append failed (followers will poll): %s", error)
        finally:
            self._notifying = False

    async def append(
        self,
        events: Sequence[NewEvent],
        *,
        expected_versions: Mapping[str, int] | None = None,
        condition: AppendCondition | None = None,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> Appended:
        """Append all of `events` or none; answer their positions.

        `expected_versions` maps a stream to the version the caller saw (0: no events yet).
        A retry (same idempotency key and fingerprint, or the same event ids) writes nothing
        and answers the first append's positions with `replayed=True`.
        """
        params = (
            _encoder.encode(events).decode(),
            json.dumps(dict(expected_versions)) if expected_versions is not None else None,
            _encoder.encode(_condition_json(condition)).decode() if condition else None,
            idempotency_key,
            fingerprint,
        )
        started = time.perf_counter()
        try:
            if conn is not None:
                rows = await _call_append(conn, params)
            else:
                rows = await self._append_retrying_races(params)
        except psycopg.Error as error:
            raise _translate(error, len(events)) from error
        appended = Appended(
            positions=tuple(row[0] for row in rows),
            event_ids=tuple(row[1] for row in rows),
            replayed=bool(rows) and rows[0][2],
        )
        APPEND_SECONDS.observe(time.perf_counter() - started)
        if not appended.replayed:
            APPENDED_EVENTS.inc(len(rows))
        return appended

    async def _append_retrying_races(self, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Appends run their checks in parallel, so two of them racing for one stream version,
        event id or idempotency key can both pass; the unique index then refuses the later
        one. Run again, it sees the winner and answers as if it had come second: a version
        conflict, or a replay of the first answer."""
        for attempt in range(RACE_RETRIES + 1):
            try:
                async with self.pool.connection() as conn:
                    return await _append_alone(conn, params, self._notify)
            except psycopg.errors.UniqueViolation as error:
                if attempt == RACE_RETRIES or error.diag.constraint_name not in RACED:
                    raise
        raise AssertionError("unreachable")

    async def recall(self, idempotency_key: str) -> StoredAnswer | None:
        """The first answer given under `idempotency_key`, if any."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT fingerprint, response FROM idempotency_keys WHERE key = %s",
                [idempotency_key],
            )
            row = await cur.fetchone()
        if row is None:
            return None
        fingerprint, response = row
        answer = msgspec.convert({**response, "replayed": True}, Appended)
        return StoredAnswer(fingerprint=fingerprint, answer=answer)

    async def head(self) -> int:
        async with self.pool.connection() as conn:
            return await readable_head(conn)

    async def read_stream(
        self, stream: str, *, from_version: int = 1, limit: int = 10_000
    ) -> list[RecordedEvent]:
        return await self._fetch(
            READ_STREAM, {"stream": stream, "from_version": from_version, "limit": limit}
        )

    async def read_feed(
        self, *, after: int = 0, limit: int = 1000, types: Sequence[str] | None = None
    ) -> list[RecordedEvent]:
        """Events after `after` in position order: resume from the last position you saw."""
        async with self.pool.connection() as conn:
            return await read_feed_on(conn, after=after, limit=limit, types=types)

    async def read_tagged(
        self,
        tag: str,
        *,
        before: int | None = None,
        limit: int = 50,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RecordedEvent]:
        """Events carrying `tag`, newest first; pass the last position seen as `before`."""
        return await self._fetch(
            READ_TAGGED,
            {
                "tag": tag,
                "before": before if before is not None else 2**63 - 1,
                "limit": limit,
                "types": list(types) if types else None,
                "since": since,
                "until": until,
            },
        )

    async def read_tagged_any(
        self,
        tags: Sequence[str],
        *,
        before: int | None = None,
        limit: int = 50,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RecordedEvent]:
        """Events carrying any of `tags`, each once, newest first; a cursor as in `read_tagged`."""
        return await self._fetch(
            READ_TAGGED_ANY,
            {
                "tags": list(dict.fromkeys(tags)),
                "before": before if before is not None else 2**63 - 1,
                "limit": limit,
                "types": list(types) if types else None,
                "since": since,
                "until": until,
            },
        )

    async def read_tagged_of_types(
        self, tags: Sequence[str], types: Sequence[str]
    ) -> list[RecordedEvent]:
        """Every event of `types` carrying any of `tags`, oldest first: for rare types only."""
        return await self._fetch(READ_TAGGED_OF_TYPES, {"tags": list(tags), "types": list(types)})

    async def get(self, event_id: UUID) -> RecordedEvent | None:
        found = await self._fetch(READ_EVENT, {"event_id": event_id})
        return found[0] if found else None

    async def _fetch(self, query: str, params: Mapping[str, Any]) -> list[RecordedEvent]:
        async with self.pool.connection() as conn:
            return await fetch(conn, query, params)


async def fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Mapping[str, Any]
) -> list[RecordedEvent]:
    """Run one of the read queries above on a connection the caller holds."""
    cur = await conn.execute(query, params, prepare=True)
    return [_recorded(row) for row in await cur.fetchall()]


async def listen(conninfo: str) -> AsyncIterator[int]:
    """Yield the newest position each time an append commits (LISTEN/NOTIFY)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        async for notice in conn.notifies():
            yield int(notice.payload)


_APPEND = (
    "SELECT out_position, out_event_id, out_replayed "
    "FROM ledger_append(%s::jsonb, %s::jsonb, %s::jsonb, %s, %s)"
)


async def _call_append(
    conn: psycopg.AsyncConnection[Any], params: tuple[Any, ...]
) -> list[tuple[Any, ...]]:
    """Within the caller's transaction: the append, and a NOTIFY delivered at its commit."""
    async with conn.transaction():
        cur = await conn.execute(_APPEND, params, prepare=True)
        rows = await cur.fetchall()
        if rows and not rows[0][2]:
            await conn.execute(_NOTIFY, [str(rows[-1][0])], prepare=True)
        return rows


async def _append_alone(
    conn: psycopg.AsyncConnection[Any],
    params: tuple[Any, ...],
    after_commit: Callable[[psycopg.AsyncConnection[Any], int], Awaitable[None]],
) -> list[tuple[Any, ...]]:
    """One autocommitted statement (the function is atomic by itself), then `after_commit`
    with the highest new position, still in autocommit."""
    manage = not conn.autocommit
    if manage:
        await conn.set_autocommit(True)
    try:
        cur = await conn.execute(_APPEND, params, prepare=True)
        rows = await cur.fetchall()
        if rows and not rows[0][2]:
            await after_commit(conn, rows[-1][0])
        return rows
    finally:
        if manage and not conn.closed:
            await conn.set_autocommit(False)


def _condition_json(condition: AppendCondition) -> dict[str, Any]:
    return {
        "after": condition.after,
        "items": [{"tags": q.tags, "types": q.types} for q in condition.fail_if_events_match],
    }


def _translate(error: psycopg.Error, total: int) -> Exception:
    """Turn the append function's coded exceptions into the domain's named errors."""
    coded = (error.sqlstate or "").startswith("LE")
    detail = json.loads(error.diag.message_detail or "{}") if coded else {}
    match error.sqlstate:
        case "LE001":
            return WrongExpectedVersion(detail["stream"], detail["expected"], detail["actual"])
        case "LE002":
            return AppendConditionFailed(detail["after"], detail["positions"])
        case "LE003":
            return DuplicateEventIds([UUID(i) for i in detail["event_ids"]], detail["total"])
        case "LE004":
            return IdempotencyKeyReused(detail["key"])
        case "23505" if "event_id" in (error.diag.constraint_name or ""):
            return DuplicateEventIds([], total)
    return error
