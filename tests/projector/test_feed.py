"""The follower's wait for new events: it must stop when its server stops it."""

from __future__ import annotations

import asyncio

import pytest

from services.projector.feed import Wakeups, sleep_until

pytestmark = pytest.mark.anyio


async def test_a_follower_cancelled_as_it_is_woken_stops(database_url: str) -> None:
    """A cancel that lands as a NOTIFY wakes the follower must not be lost (it was, with
    asyncio.wait_for on Python 3.11: the in-process projector then kept a test server alive)."""
    wakeups = Wakeups(database_url)
    try:
        for _ in range(50):

            async def follow() -> None:
                while True:
                    await sleep_until(wakeups, 5.0)

            follower = asyncio.create_task(follow())
            await asyncio.sleep(0.001)
            wakeups.event.set()
            follower.cancel()
            done, _ = await asyncio.wait({follower}, timeout=2.0)
            assert done, "the cancel was swallowed: the follower kept following"
    finally:
        await wakeups.close()
