"""The ledger store: append events with their guarantees, and read them back three ways.

Every guarantee of an append (expected versions, cross-stream conditions, idempotency,
atomic batches, gap-free positions) is enforced inside one server-side function,
`ledger_append` (migrations/versions/0005_readable_append.py), so an append is one
round trip and the lock that orders positions is held for as short a time as possible.
The call itself is in `services.store.appending`; the row shapes in `records`, the
global feed in `feed`, and the handler's state reads in `state`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from services.metrics import APPEND_SECONDS, APPENDED_EVENTS
from services.privacy.keyring import DraftKeys, Keyring, key_error
from services.store import appending
from services.store.feed import NOTIFY, read_feed_on, readable_head
from services.store.records import (
    CUT_COLUMNS,
    AppendCondition,
    Appended,
    NewEvent,
    RecordedEvent,
    StoredAnswer,
    cut_fields,
    fetch_rows,
)
from services.store.sealed import Sealer
from services.store.state import Row, Wanted, fetch_state

log = logging.getLogger("community_ledger.store")

READ_STREAM = f"""
    SELECT {CUT_COLUMNS}
    FROM events
    WHERE stream = %(stream)s
      AND stream_version >= %(from_version)s
    ORDER BY stream_version
    LIMIT %(limit)s
"""

# Walks event_tags' primary key (tag, position) backwards: newest first, no sort,
# and a deep page costs what the first one does (the cursor is a position, not an OFFSET).
READ_TAGGED = f"""
    SELECT {cut_fields("e.")}
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
    SELECT {CUT_COLUMNS}
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
    SELECT {CUT_COLUMNS}
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

READ_EVENT = f"SELECT {CUT_COLUMNS} FROM events WHERE event_id = %(event_id)s"

_NEWEST = 2**63 - 1


class Ledger:
    """The one way in and out of the events table; one instance per connection pool."""

    def __init__(
        self, pool: AsyncConnectionPool, keyring: Keyring, *, sealing: bool = True
    ) -> None:
        """`sealing` False is for benchmarks only (see `Sealer`'s `boxing`)."""
        self.pool = pool
        self.keyring = keyring
        self.sealer = Sealer(keyring, boxing=sealing)
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
                await conn.execute(NOTIFY, [str(self._notified_up_to)], prepare=True)
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
        Personal fields are sealed on the way in (services/store/sealed.py); a batch with
        `MemberForgotten` destroys those members' keys in its own transaction.
        """
        condition = self.sealer.condition(condition)
        forgotten = forgotten_in(events)

        async def on(
            conn: psycopg.AsyncConnection[Any], drafting: bool, registering: bool
        ) -> tuple[tuple[Any, ...], DraftKeys | None]:
            sealed, draft = await self.sealer.seal(
                conn, events, drafting=drafting, registering=registering
            )
            params = appending.parameters(
                sealed, expected_versions, condition, idempotency_key, fingerprint
            )
            return params, draft

        started = time.perf_counter()
        try:
            if conn is not None:
                params, _ = await on(conn, False, False)
                rows = await self._append_in(conn, params, forgotten)
            else:
                rows = await self._append_retrying_races(on, forgotten)
        except psycopg.Error as error:
            refused = key_error(error, self.keyring.master.kek_id)
            raise (refused or appending.translate(error, len(events))) from error
        appended = Appended(
            positions=tuple(row[0] for row in rows),
            event_ids=tuple(row[1] for row in rows),
            replayed=bool(rows) and rows[0][2],
        )
        APPEND_SECONDS.observe(time.perf_counter() - started)
        if not appended.replayed:
            APPENDED_EVENTS.inc(len(rows))
        return appended

    async def _append_in(
        self,
        conn: psycopg.AsyncConnection[Any],
        params: tuple[Any, ...],
        forgotten: Sequence[UUID],
    ) -> list[tuple[Any, ...]]:
        """In the caller's transaction (or one of its own): the append, and an erasure's
        key destruction, which must commit with its `MemberForgotten` or not at all."""
        async with conn.transaction():
            rows = await appending.call_append(conn, params)
            if forgotten and rows and not rows[0][2]:
                await self.keyring.destroy(conn, forgotten)
            return rows

    async def _append_retrying_races(
        self,
        on: Callable[
            [psycopg.AsyncConnection[Any], bool, bool],
            Awaitable[tuple[tuple[Any, ...], DraftKeys | None]],
        ],
        forgotten: Sequence[UUID],
    ) -> list[tuple[Any, ...]]:
        """Appends run their checks in parallel, so two of them racing for one stream version,
        event id, idempotency key or a new member's key can both pass; the unique index then
        refuses the later one. Run again, it sees the winner and answers as if it had come
        second: a version conflict, or a replay of the first answer."""
        for attempt in range(appending.RACE_RETRIES + 1):
            try:
                async with self.pool.connection() as conn:
                    # Autocommit from the key lookup on: the append is one statement that
                    # also inserts its new members' keys (`append_alone`); an erasure makes
                    # them first, committed, then runs in a transaction of its own.
                    manage = not conn.autocommit
                    if manage:
                        await conn.set_autocommit(True)
                    try:
                        # The first attempt drafts the keys of members it registers
                        # unread (Sealer.seal); one that lost that race reads them.
                        params, draft = await on(conn, not forgotten, attempt == 0)
                        if forgotten:
                            return await self._append_in(conn, params, forgotten)
                        rows, stored = await appending.append_alone(
                            conn, params, self._notify, draft
                        )
                        if draft is not None and stored:
                            self.keyring.adopt(draft, stored)
                        return rows
                    finally:
                        if manage and not conn.closed:
                            await conn.set_autocommit(False)
            except psycopg.errors.UniqueViolation as error:
                if attempt == appending.RACE_RETRIES or not appending.raced(error):
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
            found = await read_feed_on(conn, after=after, limit=limit, types=types)
            return await self.sealer.open(conn, found)

    async def read_state(self, wanted: Wanted) -> list[Row]:
        """What the handler's loader asks for (a dry run adds what it decided in memory)."""
        hashed = wanted._replace(tags=self.sealer.tags(wanted.tags))
        async with self.pool.connection() as conn:
            return await self.sealer.open_rows(conn, await fetch_state(conn, hashed))

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
                "tag": self.sealer.tag(tag),
                "before": before if before is not None else _NEWEST,
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
                "tags": self.sealer.tags(dict.fromkeys(tags)),
                "before": before if before is not None else _NEWEST,
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
        return await self._fetch(
            READ_TAGGED_OF_TYPES, {"tags": self.sealer.tags(tags), "types": list(types)}
        )

    async def get(self, event_id: UUID) -> RecordedEvent | None:
        found = await self._fetch(READ_EVENT, {"event_id": event_id})
        return found[0] if found else None

    async def _fetch(self, query: str, params: Mapping[str, Any]) -> list[RecordedEvent]:
        async with self.pool.connection() as conn:
            return await self.sealer.recorded(conn, await fetch_rows(conn, query, params))


def forgotten_in(events: Sequence[NewEvent]) -> list[UUID]:
    """The members a batch erases: their keys go in the batch's transaction."""
    return [
        UUID(msgspec.json.decode(bytes(event.data))["member_id"])
        for event in events
        if event.type == "MemberForgotten"
    ]
