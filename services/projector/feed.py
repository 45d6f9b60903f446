"""What the runner reads and how it waits: the feed on its own connection, and wakeups."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from psycopg import AsyncConnection

from domain.projections import Entry
from services.store.feed import listen, read_feed_for_folds, readable_head
from services.store.records import FeedRecord
from services.store.sealed import Sealer


class FeedReader:
    """Reads the feed on the runner's own connection (one connection per runner).

    A full batch starts the read of the next one at once, on this connection, while the
    projections write the batch on theirs.
    """

    def __init__(self, conn: AsyncConnection[Any], batch_size: int, sealer: Sealer) -> None:
        self.conn = conn
        self.sealer = sealer
        self.batch_size = batch_size
        self._ahead: tuple[int, asyncio.Task[list[FeedRecord]]] | None = None

    async def head(self) -> int:
        return await readable_head(self.conn)

    async def batch(self, after: int) -> list[FeedRecord]:
        """The batch after `after`: the one read ahead if it starts there, else read now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            if ahead[0] == after:
                records = await ahead[1]
                self._read_ahead(records)
                return records
            await cancelled(ahead[1])
        records = await self._read(after)
        self._read_ahead(records)
        return records

    def _read_ahead(self, records: list[FeedRecord]) -> None:
        if len(records) == self.batch_size:
            after = records[-1].position
            self._ahead = (after, asyncio.create_task(self._read(after)))

    async def _read(self, after: int) -> list[FeedRecord]:
        return await read_feed_for_folds(self.conn, self.sealer, after=after, limit=self.batch_size)

    async def close(self) -> None:
        if self._ahead is not None:
            await cancelled(self._ahead[1])
            self._ahead = None


class Wakeups:
    """NOTIFY from appends, with polling as the fallback when notifications are lost."""

    def __init__(self, conninfo: str) -> None:
        self.event = asyncio.Event()
        self.task = asyncio.create_task(self._listen(conninfo))

    async def _listen(self, conninfo: str) -> None:
        while True:
            try:
                async for _ in listen(conninfo):
                    self.event.set()
            except psycopg.OperationalError:
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def sleep_until(wakeups: Wakeups | None, seconds: float) -> None:
    if wakeups is None:
        await asyncio.sleep(seconds)
        return
    # asyncio.timeout, not asyncio.wait_for: on Python 3.11, wait_for swallows a cancel that
    # arrives as the event is set, and a follower stopped by its server then never stops.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wakeups.event.wait()
    wakeups.event.clear()


def decode_until_poison(records: list[FeedRecord]) -> list[Entry]:
    entries = []
    for record in records:
        try:
            event = record.decode()
        except Exception:
            break
        entries.append(
            Entry(
                position=record.position,
                occurred_at=record.occurred_at,
                event=event,
                event_id=record.event_id,
            )
        )
    return entries


def decode_error(record: FeedRecord) -> BaseException:
    try:
        record.decode()
    except Exception as error:
        return error
    return RuntimeError("decoded on the second try")


async def cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
