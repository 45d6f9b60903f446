"""Chores an API process does in the background while it serves.

Forgets Idempotency-Keys past their retention (every process does it; the DELETE is
idempotent, so several workers doing it at once only repeat each other), and drops the
expired windows of the in-memory rate limits, which Litestar's memory store keeps until
they are read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta

import psycopg
from litestar.stores.memory import MemoryStore
from psycopg_pool import AsyncConnectionPool

from services.store.idempotency import purge_idempotency_keys

log = logging.getLogger("community_ledger.api")

PURGE_SECONDS = 3600.0
SWEEP_SECONDS = 60.0


async def purge_once(pool: AsyncConnectionPool, retention: timedelta) -> int:
    """Delete the expired Idempotency-Keys; a failure is logged and tried again next time."""
    try:
        async with pool.connection() as conn:
            purged = await purge_idempotency_keys(conn, retention)
    except psycopg.Error as error:
        log.warning(
            "could not purge old idempotency keys (%s); retrying later", type(error).__name__
        )
        return 0
    if purged:
        log.info("forgot %d idempotency keys older than %s", purged, retention)
    return purged


async def keep_house(
    pool: AsyncConnectionPool,
    retention: timedelta,
    stores: Sequence[MemoryStore],
    stop: asyncio.Event,
    *,
    purge_every: float = PURGE_SECONDS,
    sweep_every: float = SWEEP_SECONDS,
) -> None:
    """Until `stop` is set: purge at start and every `purge_every`, sweep every `sweep_every`.

    Stopped by an event, not by cancelling: the memory store's anyio lock can swallow a
    cancel on Python 3.11, and the server's shutdown would then wait for ever.
    """
    purged_at = float("-inf")
    while not stop.is_set():
        if time.monotonic() - purged_at >= purge_every:
            await purge_once(pool, retention)
            purged_at = time.monotonic()
        for store in stores:
            await store.delete_expired()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(sweep_every, purge_every)):
                await stop.wait()
