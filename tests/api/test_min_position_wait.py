"""Reads that wait for `min_position` share one listener and one checkpoint read per notice,
and a process with too many of them waiting answers 503 at once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.limit_settings import LimitSettings
from services.projector.progress import Progress
from services.projector.runner import Runner
from tests.api.statements import Statements, count_statements

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
WAITERS = 50


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Statements:
    return count_statements(monkeypatch)


@asynccontextmanager
async def served(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app under uvicorn in this event loop: requests really run side by side (the test
    client answers one at a time), and the test sees the app's state."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started or task.done())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await task


async def catch_up(database_url: str) -> None:
    await Runner(database_url, progress=Progress()).run()


async def until(condition: Any) -> None:
    """Wait for `condition`; fail (rather than hang) if it never comes."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never came true")


async def test_many_waiting_reads_cost_a_few_checkpoint_reads_not_one_each(
    statements: Statements, database_url: str, writer: dict[str, str], reader: dict[str, str]
) -> None:
    async with served(create_app(database_url)) as client:
        await many_waiting_reads(client, statements, database_url, writer, reader)


async def many_waiting_reads(
    client: httpx.AsyncClient,
    statements: Statements,
    database_url: str,
    writer: dict[str, str],
    reader: dict[str, str],
) -> None:
    written = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    position = written.json()["positions"][-1]
    await client.get("/v1/members", headers=reader)  # the reader's key, now authenticated
    before = statements.reading_checkpoints()

    waiting = [
        asyncio.create_task(
            client.get("/v1/members", headers={**reader, "Ledger-Min-Position": str(position)})
        )
        for _ in range(WAITERS)
    ]
    await asyncio.sleep(0.3)  # let them wait: polling would read the checkpoints meanwhile
    await catch_up(database_url)
    answers = await asyncio.gather(*waiting)

    assert [answer.status_code for answer in answers] == [200] * WAITERS
    assert all(answer.json()["members"] for answer in answers)
    assert statements.reading_checkpoints() - before <= 5


async def test_past_the_waiter_bound_a_read_answers_503_with_retry_after_at_once(
    database_url: str, writer: dict[str, str], reader: dict[str, str]
) -> None:
    app = create_app(database_url, limits=LimitSettings(max_waiters=2))
    async with served(app) as client:
        written = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
        wait_for = {**reader, "Ledger-Min-Position": str(written.json()["positions"][-1])}
        waiting = [asyncio.create_task(client.get("/v1/members", headers=wait_for)) for _ in "ab"]
        await until(lambda: app.state.watch.waiters == 2)

        turned_away = await client.get("/v1/members", headers=wait_for)
        await catch_up(database_url)
        answered = await asyncio.gather(*waiting)

    assert turned_away.status_code == 503, turned_away.text
    assert turned_away.headers["retry-after"] == "1"
    assert turned_away.headers["content-type"].startswith("application/problem+json")
    assert "more than 2 requests are waiting" in turned_away.json()["detail"]
    assert [answer.status_code for answer in answered] == [200, 200]


async def test_a_read_whose_position_was_seen_reached_costs_no_checkpoint_read(
    statements: Statements,  # first: the app's pool must be made after it
    client: Client,
    database_url: str,
    writer: dict[str, str],
    reader: dict[str, str],
) -> None:
    written = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    wait_for = {**reader, "Ledger-Min-Position": str(written.json()["positions"][-1])}
    await catch_up(database_url)
    first = await client.get("/v1/members", headers=wait_for)
    before = statements.reading_checkpoints()

    again = await client.get("/v1/members", headers=wait_for)

    assert first.status_code == 200 and again.status_code == 200
    assert statements.reading_checkpoints() == before
