"""GET /v1/events/stream under a real uvicorn: resumption exactly once, filters that still
move the client's last id, the feed's horizon, heartbeats, slow consumers, one listener."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from litestar import Litestar

from services.api.app import create_app
from services.settings import StreamSettings
from services.store.ledger import Ledger
from tests.api.sse import STREAM, opened, served
from tests.store.conftest import new_event

pytestmark = pytest.mark.anyio

QUICK = StreamSettings(heartbeat_seconds=0.2, queue_events=1000, max_seconds=60)


@pytest.fixture
def app(api_url: str) -> Litestar:
    return create_app(api_url, stream=QUICK)


@pytest.fixture
async def client(app: Litestar, reader: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        served(app) as server,
        httpx.AsyncClient(base_url=server.url, headers=reader, timeout=10) as client,
    ):
        yield client


async def append(ledger: Ledger, count: int, **kwargs: Any) -> list[int]:
    appended = await ledger.append([new_event(**kwargs) for _ in range(count)])
    return list(appended.positions)


async def test_a_client_reconnecting_with_last_event_id_gets_exactly_the_missed_then_live_ones(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    first = await append(ledger, 3)
    async with opened(client) as source:
        seen = await source.events(3)
        last = source.last_event_id
    missed = await append(ledger, 4)

    async with opened(client, headers={"Last-Event-ID": str(last)}) as source:
        resumed = await source.events(4)
        live = await append(ledger, 2)
        after = await source.events(2)

    assert [b.position for b in seen] == first and last == str(first[-1])
    assert [b.position for b in resumed] == missed
    assert [b.position for b in after] == live


async def test_each_event_is_its_type_and_the_feeds_json_of_it(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    await append(ledger, 2, type="Noted", note="café\nnext line")
    feed = (await client.get("/v1/events?after=0")).json()["events"]

    async with opened(client) as source:
        sent = await source.events(2)

    assert [b.event for b in sent] == ["Noted", "Noted"]
    assert [b.json() for b in sent] == feed
    assert [b.id for b in sent] == [str(e["position"]) for e in feed]


async def test_after_resumes_and_last_event_id_wins_over_it(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    positions = await append(ledger, 5)

    async with opened(client, f"?after={positions[1]}") as source:
        from_query = await source.events(3)
    async with opened(client, "?after=0", {"Last-Event-ID": str(positions[3])}) as source:
        from_header = await source.events(1)

    assert [b.position for b in from_query] == positions[2:]
    assert [b.position for b in from_header] == positions[4:]


async def test_a_types_filter_sends_only_those_and_moves_the_id_over_the_others(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    await append(ledger, 2, type="Skipped")
    wanted = await append(ledger, 1, type="Wanted")
    async with opened(client, "?types=Wanted,Other") as source:
        caught_up = await source.events(1)
        skipped = await append(ledger, 3, type="Skipped")
        # No event to send: the heartbeat carries the id past the skipped ones.
        beat = await source.until_comment("heartbeat")
        for _ in range(50):  # a heartbeat may beat the hub to the skipped events
            if beat[-1].id is not None:
                break
            beat = await source.until_comment("heartbeat")
        live = await append(ledger, 1, type="Other")
        sent = await source.events(1)

    assert [b.position for b in caught_up] == wanted
    assert source.last_event_id == str(live[0])
    assert beat[-1].id == str(skipped[-1]) and beat[-1].data is None
    assert [(b.position, b.event) for b in sent] == [(live[0], "Other")]


async def test_a_filtered_stream_gets_heartbeats_while_only_unwanted_events_are_appended(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    async with opened(client, "?types=Wanted") as source:
        await source.until_comment("heartbeat")

        async def keep_appending() -> None:
            while True:  # each append wakes the stream, more often than it beats
                await append(ledger, 1, type="Skipped")
                await asyncio.sleep(QUICK.heartbeat_seconds / 4)

        appending = asyncio.create_task(keep_appending())
        try:
            beat = await source.until_comment("heartbeat", timeout=5)
        finally:
            appending.cancel()

    assert all(b.data is None for b in beat), "a skipped event was sent"


async def test_a_space_filter_sends_only_events_in_that_space(
    client: httpx.AsyncClient, ledger: Ledger
) -> None:
    here = await append(ledger, 1, tags=("space:here",))
    await append(ledger, 2, tags=("space:elsewhere",))
    async with opened(client, "?space=here") as source:
        caught_up = await source.events(1)
        await append(ledger, 2, tags=("space:elsewhere",))
        live = await append(ledger, 1, tags=("space:here", "member:x"))
        sent = await source.events(1)

    assert [b.position for b in caught_up] == here
    assert [b.position for b in sent] == live


async def test_a_member_filter_takes_an_id_or_a_handle_and_erased_members_read_erased(
    client: httpx.AsyncClient, writer: dict[str, str], admin: dict[str, str]
) -> None:
    ana = await client.post(
        "/v1/members", json={"display_name": "Ana", "handles": ["github:ana"]}, headers=writer
    )
    bob = await client.post("/v1/members", json={"display_name": "Bob"}, headers=writer)
    ana_id, bob_id = ana.json()["id"], bob.json()["id"]
    async with opened(client, "?member=github:ana") as by_handle:
        registered = await by_handle.events(1)
        await client.post(
            "/v1/contributions",
            json={"member": bob_id, "kind": "review", "space": "s"},
            headers=writer,
        )
        forgotten = await client.post(
            f"/v1/members/{ana_id}/erasure", json={"reason": "asked"}, headers=admin
        )
        assert forgotten.status_code < 300, forgotten.text
        live = await by_handle.events(1)
    async with opened(client, f"?member={ana_id}") as by_id:
        again = await by_id.events(2)

    assert [b.event for b in registered] == ["MemberRegistered"]
    assert registered[0].json()["data"]["display_name"] == "Ana"
    assert [b.event for b in live] == ["MemberForgotten"]
    assert [b.position for b in again] == [registered[0].position, live[0].position]
    assert again[0].json()["data"]["display_name"] is None
    assert again[0].json()["data"]["erased"] is True


async def test_a_later_append_that_commits_first_waits_for_the_earlier_one(
    client: httpx.AsyncClient, ledger: Ledger, database_url: str
) -> None:
    before = await append(ledger, 1)
    async with opened(client) as source:
        assert [b.position for b in await source.events(1)] == before
        async with (
            await psycopg.AsyncConnection.connect(database_url) as slow,
            slow.transaction(),
        ):
            held = await ledger.append([new_event("slow")], conn=slow)
            quick = await append(ledger, 1)
            with pytest.raises(TimeoutError):
                await source.events(1, timeout=0.6)
        nudge = await append(ledger, 1)  # the held append's own NOTIFY came from no one
        sent = await source.events(3)

    assert [b.position for b in sent] == [held.positions[0], *quick, *nudge]


async def test_an_idle_stream_gets_a_heartbeat_comment(client: httpx.AsyncClient) -> None:
    async with opened(client) as source:
        beats = await source.until_comment("heartbeat", timeout=2)

    assert all(b.data is None for b in beats)


async def test_any_number_of_streams_share_one_listener_and_one_read_per_append(
    app: Litestar, client: httpx.AsyncClient, ledger: Ledger, database_url: str
) -> None:
    async with (
        opened(client) as s1,
        opened(client) as s2,
        opened(client) as s3,
        opened(client) as s4,
        opened(client) as s5,
    ):
        sources = [s1, s2, s3, s4, s5]
        await asyncio.gather(*(s.until_comment("heartbeat") for s in sources))
        hub = app.state.stream_hub
        reads = hub.reads
        positions = await append(ledger, 3)
        received = await asyncio.gather(*(s.events(3) for s in sources))
        listeners = _listeners(database_url)
        reads_for_all = hub.reads - reads
        subscribed = len(hub.subscriptions)

    assert all([b.position for b in r] == positions for r in received)
    assert listeners == 1
    assert subscribed == 5
    assert reads_for_all <= 3, "the hub read the new events once per append, not per stream"


def _listeners(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query = 'LISTEN ledger_events'"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_slow_consumer_is_told_where_to_resume_and_disconnected(
    api_url: str, ledger: Ledger, read_token: str
) -> None:
    settings = StreamSettings(heartbeat_seconds=5, queue_events=20, max_seconds=60)
    app = create_app(api_url, stream=settings)
    async with served(app) as server:
        host, port = server.url.removeprefix("http://").split(":")
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # read nothing, hold little
        slow.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(slow, (host, int(port)))
        request = (
            f"GET {STREAM} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Authorization: Bearer {read_token}\r\n\r\n"
        )
        await loop.sock_sendall(slow, request.encode())
        hub = app.state.stream_hub
        for _ in range(200):
            if hub.subscriptions:
                break
            await asyncio.sleep(0.02)
        # Loopback buffers hold megabytes before the server's writes block: big events.
        for _ in range(30):
            await append(ledger, 50, note="x" * 20_000)
            if not hub.subscriptions:
                break
            await asyncio.sleep(0.05)
        dropped = not hub.subscriptions
        received = b""
        async with asyncio.timeout(20):
            while chunk := await loop.sock_recv(slow, 65536):
                received += chunk
        slow.close()

    assert dropped, "the hub still holds the slow stream's queue"
    text = received.decode()
    ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "sent out of order or with a gap"
    assert f"resume from position {ids[-1]} (send Last-Event-ID: {ids[-1]})" in text
    assert "slow consumer" in text and text.rstrip().endswith("0"), text[-300:]


async def test_stopping_the_server_ends_open_streams_promptly(
    api_url: str, reader: dict[str, str]
) -> None:
    app = create_app(api_url, stream=StreamSettings(heartbeat_seconds=30))
    async with (
        served(app) as server,
        httpx.AsyncClient(base_url=server.url, headers=reader, timeout=10) as client,
        opened(client) as source,
    ):
        await source.block()
        started = asyncio.get_running_loop().time()
        server.server.should_exit = True
        last = await source.until_comment("the server is stopping", timeout=5)
        with pytest.raises(EOFError):
            await source.block(timeout=5)
        took = asyncio.get_running_loop().time() - started

    assert last[-1].data is None
    assert took < 5


@pytest.mark.parametrize(
    ("query", "headers", "status", "named"),
    [
        ("?after=-1", {}, 400, "after"),
        ("?after=99999999999999999999", {}, 400, "after"),
        ("", {"Last-Event-ID": "\u0663".encode()}, 400, "Last-Event-ID"),
        ("", {"Last-Event-ID": "1.5"}, 400, "Last-Event-ID"),
        ("?member=nobody-without-platform", {}, 400, ""),
        ("?member=github:nobody", {}, 404, "handle"),
        ("?member=0194b3c2-8a1f-7d11-8e2a-3c4b5d6e7f80", {}, 404, "no member"),
    ],
)
async def test_bad_parameters_are_a_problem_before_any_stream(
    client: httpx.AsyncClient, query: str, headers: dict[str, str], status: int, named: str
) -> None:
    answer = await client.get(f"{STREAM}{query}", headers=headers)

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert named in answer.json()["detail"]
    assert "nobody" not in answer.text


async def test_the_stream_needs_a_key(client: httpx.AsyncClient) -> None:
    answer = await client.get(STREAM, headers={"Authorization": ""})

    assert answer.status_code == 401


async def test_streams_resuming_within_the_hubs_recent_events_read_nothing_from_the_feed(
    app: Litestar, client: httpx.AsyncClient, ledger: Ledger
) -> None:
    async with opened(client) as live:
        await live.until_comment("heartbeat")
        earlier = await append(ledger, 30)
        await live.events(30)
        hub = app.state.stream_hub
        reads = hub.catch_up_reads
        resume = {"Last-Event-ID": str(earlier[9])}
        async with (
            opened(client, headers=resume) as r1,
            opened(client, headers=resume) as r2,
            opened(client, headers=resume) as r3,
        ):
            missed = await asyncio.gather(*(r.events(20) for r in (r1, r2, r3)))
            later = await append(ledger, 2)
            after = await asyncio.gather(*(r.events(2) for r in (r1, r2, r3)))
        catch_up_reads = hub.catch_up_reads - reads

    assert all([b.position for b in m] == earlier[10:] for m in missed)
    assert all([b.position for b in a] == later for a in after)
    assert catch_up_reads == 0, "a reconnecting crowd is served from the hub's recent events"


async def test_a_stream_older_than_the_recent_events_reads_the_feed_then_joins_without_a_gap(
    api_url: str, ledger: Ledger, reader: dict[str, str]
) -> None:
    small = StreamSettings(heartbeat_seconds=0.2, queue_events=20, max_seconds=60)
    app = create_app(api_url, stream=small)
    async with (
        served(app) as server,
        httpx.AsyncClient(base_url=server.url, headers=reader, timeout=10) as client,
        opened(client) as live,
    ):
        await live.until_comment("heartbeat")
        earlier = [p for _ in range(3) for p in await append(ledger, 25)]
        await live.events(75)
        hub = app.state.stream_hub
        reads = hub.catch_up_reads
        assert hub.recent_floor > earlier[0], "the hub keeps only its last 20 messages"
        async with opened(client, headers={"Last-Event-ID": str(earlier[0])}) as old:
            missed = await old.events(74)
            later = await append(ledger, 3)
            after = await old.events(3)
        catch_up_reads = hub.catch_up_reads - reads

    assert [b.position for b in missed] == earlier[1:]
    assert [b.position for b in after] == later
    assert catch_up_reads >= 1


async def test_a_filtered_stream_whose_last_match_is_far_behind_joins_the_live_tail(
    app: Litestar, client: httpx.AsyncClient, ledger: Ledger
) -> None:
    rare = await append(ledger, 1, type="Rare")
    await append(ledger, 600)  # more than a page of other events after the last match
    async with opened(client, query="?types=Rare") as source:
        await source.until_comment("heartbeat")
        hub = app.state.stream_hub
        subscribed = len(hub.subscriptions)
        reads = hub.catch_up_reads
        live = await append(ledger, 1, type="Rare")
        received = await source.events(1)

    assert subscribed == 1
    assert reads <= 2, "one filtered read reached the head; no rescans of the other events"
    assert [b.position for b in received] == live and live[0] > rare[0]
