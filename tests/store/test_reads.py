"""Reads by stream, by tag (newest first, cursor-paginated) and of the global feed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.store.feed import listen
from services.store.ledger import READ_TAGGED, Ledger
from tests.store.conftest import new_event

pytestmark = pytest.mark.anyio


async def test_read_stream_returns_a_streams_events_in_version_order(ledger: Ledger) -> None:
    await ledger.append([new_event("a"), new_event("b"), new_event("a")])

    events = await ledger.read_stream("a", from_version=2)

    assert [(e.stream, e.stream_version, e.position) for e in events] == [("a", 2, 3)]


async def test_read_tagged_pages_newest_first_with_a_cursor(ledger: Ledger) -> None:
    await ledger.append([new_event(tags=("member:ana",)) for _ in range(5)])
    await ledger.append([new_event(tags=("member:bob",))])

    first = await ledger.read_tagged("member:ana", limit=2)
    second = await ledger.read_tagged("member:ana", limit=2, before=first[-1].position)
    last = await ledger.read_tagged("member:ana", limit=2, before=second[-1].position)

    assert [e.position for e in first + second + last] == [5, 4, 3, 2, 1]


async def test_read_tagged_filters_by_type_and_time(ledger: Ledger) -> None:
    old = new_event(tags=("member:ana",), type="ContributionRecorded")
    old = old.__class__(
        **{
            **{f: getattr(old, f) for f in old.__struct_fields__},
            "occurred_at": datetime(2020, 1, 1, tzinfo=UTC),
        }
    )
    await ledger.append(
        [
            old,
            new_event(tags=("member:ana",), type="ContributionRecorded"),
            new_event(tags=("member:ana",), type="MentionRecorded"),
        ]
    )

    contributions = await ledger.read_tagged("member:ana", types=["ContributionRecorded"])
    recent = await ledger.read_tagged("member:ana", since=datetime.now(UTC) - timedelta(days=1))
    early = await ledger.read_tagged("member:ana", until=datetime(2021, 1, 1, tzinfo=UTC))

    assert [e.position for e in contributions] == [2, 1]
    assert [e.position for e in recent] == [3, 2]
    assert [e.event_id for e in early] == [old.event_id]


async def test_the_tag_query_walks_an_index_backwards_without_sorting(
    ledger: Ledger, database_url: str
) -> None:
    await ledger.append([new_event(tags=(f"member:{i % 50}",)) for i in range(20_000)])
    with psycopg.connect(database_url) as conn:
        conn.execute("ANALYZE")
        params = {
            "tag": "member:7",
            "before": 15_000,
            "limit": 20,
            "types": None,
            "since": None,
            "until": None,
        }
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + READ_TAGGED, params))

    assert "Index Only Scan Backward using event_tags_pkey" in plan, plan
    assert "Sort" not in plan, plan


async def test_read_feed_resumes_after_a_position_and_filters_types(ledger: Ledger) -> None:
    await ledger.append([new_event(type="A"), new_event(type="B"), new_event(type="A")])

    after_one = await ledger.read_feed(after=1)
    only_a = await ledger.read_feed(after=0, types=["A"])

    assert [e.position for e in after_one] == [2, 3]
    assert [e.position for e in only_a] == [1, 3]


async def test_get_finds_an_event_by_id(ledger: Ledger) -> None:
    event = new_event(tags=("member:ana",))
    await ledger.append([event])

    found = await ledger.get(event.event_id)

    assert found is not None and found.position == 1 and found.tags == ("member:ana",)
    assert await ledger.get(new_event().event_id) is None


async def test_listeners_wake_when_an_append_commits(ledger: Ledger, database_url: str) -> None:
    positions = listen(database_url)
    waiting = asyncio.ensure_future(positions.__anext__())
    await asyncio.sleep(0.3)  # let LISTEN register before the append

    await ledger.append([new_event(), new_event()])

    assert await asyncio.wait_for(waiting, timeout=5) == 2
    await positions.aclose()


async def test_concurrent_appends_share_notifications_but_the_last_one_is_announced(
    ledger: Ledger, database_url: str
) -> None:
    positions = listen(database_url)
    heard: list[int] = []

    async def hear_up_to(last: int) -> None:
        async for position in positions:
            heard.append(position)
            if position >= last:
                return

    listening = asyncio.ensure_future(hear_up_to(20))
    await asyncio.sleep(0.3)  # let LISTEN register before the appends

    await asyncio.gather(*(ledger.append([new_event(f"s{n}")]) for n in range(20)))

    await asyncio.wait_for(listening, timeout=5)
    await positions.aclose()
    assert heard[-1] == 20 and heard == sorted(heard)
    assert 1 <= len(heard) <= 20
