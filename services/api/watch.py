"""Where the live projections are, shared by every request that waits for `min_position`.

One LISTEN connection per process hears the projector's progress notices
(services/projector/notices.py), each naming a live projection and the position it
committed. Once listening, the watch reads every live checkpoint once; from then on the
notices keep it current with no query at all, so N waiting requests cost nothing per
request, however large N is. While the listener is down (a lost connection), notices
may be missed: then, while anyone waits, the checkpoints are read every FALLBACK_SECONDS.
Checkpoints only move forward, so a position once seen reached stays reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.projector.notices import listen_progress, parse_progress

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
    """The live checkpoints, kept by notices, for all of a process's waiters at once."""

    def __init__(self, pool: AsyncConnectionPool, conninfo: str, max_waiters: int) -> None:
        self.pool = pool
        self.conninfo = conninfo
        self.max_waiters = max_waiters
        self.waiters = 0
        self.live: dict[str, int] = {}
        self.reads = 0
        """Checkpoint reads so far: the cost of every wait in this process together."""
        self.listening = False
        """Whether every notice since the last read has been heard (the cache is current)."""
        self._changed = asyncio.Event()
        self._wanted = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._fallback())]

    async def close(self, within: float = 5.0) -> None:
        """Stop listening; never hold the server's shutdown longer than `within` seconds."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=within)
            for task in pending:
                log.warning("the projections' watch did not stop: %s", task.get_stack(limit=5))
        self._tasks = []

    def reached(self, names: tuple[str, ...], position: int) -> bool:
        return all(self.live.get(name, -1) >= position for name in names)

    async def wait(self, names: tuple[str, ...], position: int, timeout: float) -> None:
        """Return once every named projection is live at `position` or beyond; TimeoutError
        after `timeout` seconds; TooManyWaiters at once when the process is full."""
        if self.reached(names, position):
            return
        if self.waiters >= self.max_waiters:
            raise TooManyWaiters(self.max_waiters)
        self.waiters += 1
        try:
            if not self.listening:
                self._wanted.set()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.
            async with asyncio.timeout(timeout):
                while not self.reached(names, position):
                    await self._changed.wait()
        finally:
            self.waiters -= 1

    def _moved(self, name: str, position: int) -> None:
        if position > self.live.get(name, -1):
            self.live[name] = position
            # Wake everyone waiting now; later waiters wait on the next change.
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def _read(self) -> None:
        self.reads += 1
        async with self.pool.connection() as conn:
            cur = await conn.execute(LIVE_POSITIONS, prepare=True)
            rows = await cur.fetchall()
        for name, position in rows:
            self._moved(str(name), int(position))

    async def _listen(self) -> None:
        while True:
            try:
                async for payload in listen_progress(self.conninfo, on_listening=self._caught_up):
                    if (progress := parse_progress(payload)) is not None:
                        self._moved(*progress)
            except psycopg.Error as error:
                log.warning(
                    "lost the projections' notices (%s); reconnecting", type(error).__name__
                )
            finally:
                self.listening = False
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _caught_up(self) -> None:
        """Now listening: one read covers everything committed before, notices the rest."""
        await self._read()
        self.listening = True

    async def _fallback(self) -> None:
        """While the listener is down and anyone waits, read every FALLBACK_SECONDS."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FALLBACK_SECONDS):
                    await self._wanted.wait()
            self._wanted.clear()
            if self.waiters and not self.listening:
                try:
                    await self._read()
                except psycopg.Error as error:
                    log.warning("could not read the checkpoints (%s)", type(error).__name__)
