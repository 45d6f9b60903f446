"""Readers of the global feed never skip an event that commits late.

Eight writers append for several seconds, pausing at random inside their transactions
so that commits land out of order (and some roll back), while a reader tails the feed
with `after=<last position seen>`. The reader must end with every committed event
exactly once, in increasing positions.
"""

from __future__ import annotations

import asyncio
import random
import time
from uuid import UUID

import psycopg
import pytest

from services.store.feed import read_feed_for_folds
from services.store.ledger import Ledger
from tests.store.conftest import new_event

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WRITERS = 8
DURATION_S = 4.0


async def test_tailing_reader_sees_every_committed_event_once_in_order(
    ledger: Ledger, database_url: str
) -> None:
    committed: set[UUID] = set()
    writers_done = asyncio.Event()
    start = asyncio.Event()

    async def writer(number: int) -> None:
        rng = random.Random(number)
        await start.wait()
        deadline = time.monotonic() + DURATION_S
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            while time.monotonic() < deadline:
                batch = [new_event(f"writer-{number}") for _ in range(rng.randint(1, 3))]
                try:
                    async with conn.transaction():
                        if rng.random() < 0.2:
                            # An xid taken before the append: the path that appends alone.
                            await conn.execute("SELECT pg_current_xact_id()")
                        await asyncio.sleep(rng.random() * 0.01)
                        await ledger.append(batch, conn=conn)
                        await asyncio.sleep(rng.random() * 0.01)
                        if rng.random() < 0.1:
                            raise _Abandon
                except _Abandon:
                    continue
                committed.update(e.event_id for e in batch)

    async def reader() -> list[tuple[int, UUID]]:
        seen: list[tuple[int, UUID]] = []
        await start.wait()
        while True:
            finished = writers_done.is_set()
            after = seen[-1][0] if seen else 0
            page = await ledger.read_feed(after=after, limit=500)
            seen += [(e.position, e.event_id) for e in page]
            if finished and not page:
                return seen
            await asyncio.sleep(0.001 if page else 0.005)

    async def run_writers() -> None:
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        writers_done.set()

    reading = asyncio.create_task(reader())
    writing = asyncio.create_task(run_writers())
    start.set()
    await writing
    seen = await reading

    positions = [position for position, _ in seen]
    assert positions == sorted(set(positions)), "the reader saw a position twice or out of order"
    assert len(committed) > 100, f"only {len(committed)} events committed: the race was too tame"
    assert {event_id for _, event_id in seen} == committed
    assert len(seen) == len(committed)


class _Abandon(Exception):
    """Roll a writer's transaction back after it appended."""


async def test_the_feed_stops_below_an_append_that_has_not_committed(
    ledger: Ledger, database_url: str
) -> None:
    """A later append that commits first stays hidden until the earlier one commits."""
    await ledger.append([new_event("before")])
    async with await psycopg.AsyncConnection.connect(database_url) as slow:
        async with slow.transaction():
            held = await ledger.append([new_event("slow")], conn=slow)
            quick = await ledger.append([new_event("quick")])
            assert quick.positions[0] > held.positions[0]

            visible = [e.position for e in await ledger.read_feed(after=0)]
            head_while_open = await ledger.head()
            async with ledger.pool.connection() as conn:
                for_folds = await read_feed_for_folds(conn, ledger.sealer, after=0, limit=10)

        after_commit = [e.position for e in await ledger.read_feed(after=0)]

    assert visible == [1], "the reader passed a position that had not committed yet"
    assert [e.position for e in for_folds] == [1]
    assert head_while_open == 1
    assert after_commit == [1, held.positions[0], quick.positions[0]]
    assert await ledger.head() == quick.positions[0]


async def test_an_append_in_a_transaction_that_already_wrote_keeps_the_order(
    ledger: Ledger, database_url: str
) -> None:
    """Its xid predates the appends it waits for, so it appends alone (see 0004)."""
    async with await psycopg.AsyncConnection.connect(database_url) as early:
        async with early.transaction():
            await early.execute("SELECT pg_current_xact_id()")
            first = await ledger.append([new_event("early")], conn=early)
        second = await ledger.append([new_event("later")])

    feed = await ledger.read_feed(after=0)
    assert [e.position for e in feed] == [first.positions[0], second.positions[0]]


async def test_a_long_transaction_that_is_not_an_append_does_not_hold_the_feed_back(
    ledger: Ledger, database_url: str
) -> None:
    async with (
        await psycopg.AsyncConnection.connect(database_url) as other,
        other.transaction(),
    ):
        await other.execute("SELECT pg_current_xact_id()")
        appended = await ledger.append([new_event("meanwhile")])

        feed = await ledger.read_feed(after=0)
        head = await ledger.head()

    assert [e.position for e in feed] == list(appended.positions)
    assert head == appended.positions[-1]
