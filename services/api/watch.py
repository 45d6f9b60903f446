"""Where the live projections are, shared by every request that waits for `min_position`.

One LISTEN connection per process hears the projector's progress notices
(services/projector/notices.py); on each, while anyone waits, one query reads every live
checkpoint and wakes all waiters to compare. So N waiting requests cost the queries of
one, however large N is. A notice lost (the listener reconnecting) only delays a waiter
until the next read: while anyone waits, the checkpoints are read at least every
FALLBACK_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.projector.notices import listen_progress

log = logging.getLogger("community_ledger.api")

FALLBACK_SECONDS = 1.0
RECONNECT_SECONDS = 1.0

LIVE_POSITIONS = """
    SELECT name, position
    FROM projection_builds
    WHERE state = 'live'
"""


class TooManyWaiters(Exception):
    """More requests wait for projections than this process allows."""


class ProjectionWatch:
    """The live checkpoints, re-read on demand and on notices, for all waiters at once."""

    def __init__(self, pool: AsyncConnectionPool, conninfo: str, max_waiters: int) -> None:
        self.pool = pool
        self.conninfo = conninfo
        self.max_waiters = max_waiters
        self.waiters = 0
        self.live: dict[str, int] = {}
        self.reads = 0
        """Checkpoint reads so far: the cost of every wait in this process together."""
        self._wanted = asyncio.Event()
        self._read_done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._read())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def reached(self, names: tuple[str, ...], position: int) -> bool:
        return all(self.live.get(name, -1) >= position for name in names)

    async def wait(self, names: tuple[str, ...], position: int, timeout: float) -> None:
        """Return once every named projection is live at `position` or beyond; TimeoutError
        after `timeout` seconds; TooManyWaiters at once when the process is full.

        Checkpoints only move forward, so what an earlier read saw reached is reached
        still: such a wait costs no query at all.
        """
        if self.reached(names, position):
            return
        if self.waiters >= self.max_waiters:
            raise TooManyWaiters(self.max_waiters)
        self.waiters += 1
        try:
            self._wanted.set()  # a read that starts after this arrival, shared with others
            async with asyncio.timeout(timeout):
                while True:
                    await self._read_done.wait()
                    if self.reached(names, position):
                        return
        finally:
            self.waiters -= 1

    async def _read(self) -> None:
        """Read the checkpoints when asked (and every FALLBACK_SECONDS while anyone waits)."""
        while True:
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.
                async with asyncio.timeout(FALLBACK_SECONDS if self.waiters else None):
                    await self._wanted.wait()
            self._wanted.clear()  # asks made from here on get the next read
            if not self.waiters:
                continue
            self.reads += 1
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(LIVE_POSITIONS, prepare=True)
                    rows = await cur.fetchall()
            except psycopg.Error as error:
                log.warning("could not read the projections' checkpoints: %s", type(error).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            self.live = {str(name): int(position) for name, position in rows}
            # Wake everyone waiting on this read; later waiters wait on the next one.
            done, self._read_done = self._read_done, asyncio.Event()
            done.set()

    async def _listen(self) -> None:
        while True:
            try:
                async for _ in listen_progress(self.conninfo):
                    if self.waiters:
                        self._wanted.set()
            except psycopg.OperationalError as error:
                log.warning(
                    "lost the projections' notices (%s); reconnecting", type(error).__name__
                )
            await asyncio.sleep(RECONNECT_SECONDS)


def waiting(watch: Any) -> int:
    """How many requests wait now (for metrics and tests); 0 without a watch."""
    return watch.waiters if isinstance(watch, ProjectionWatch) else 0
