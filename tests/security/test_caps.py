"""Caps that protect the event loop and the append lock: handles per member, items and bytes
per batch; and the loop keeps answering while the largest allowed batch is written."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from domain.limits import MAX_HANDLES
from services.api.app import MAX_BODY, create_app
from services.api.bodies import MAX_DEPTH
from services.api.schemas import MAX_BATCH_BYTES, MAX_BATCH_ITEMS
from services.store.ledger import Ledger
from tests.security.routes import DOCUMENT, Client, assert_problem, head

pytestmark = pytest.mark.anyio

PROBE_SHARE = 0.2
"""Of the batch's time: a server loop held by the batch would keep probes waiting for about
half of it (probes sent all along, each answered only at its end)."""


def registrations(count: int, handles: int, tag: str = "m") -> list[dict[str, object]]:
    return [
        {
            "command": "register_member",
            "display_name": f"Member {i}",
            "handles": [f"discord:{tag}{i}é{h}" for h in range(handles)],
        }
        for i in range(count)
    ]


async def test_a_registration_with_more_handles_than_allowed_is_a_400(
    client: Client, writer: dict[str, str], ledger: Ledger
) -> None:
    handles = [f"github:ana{i}" for i in range(MAX_HANDLES + 1)]
    before = await head(ledger)

    refused = await client.post(
        "/v1/members", json={"display_name": "Ana", "handles": handles}, headers=writer
    )
    accepted = await client.post(
        "/v1/members", json={"display_name": "Ana", "handles": handles[:-1]}, headers=writer
    )

    assert_problem(refused, 400)
    assert accepted.status_code == 201, accepted.text
    assert await head(ledger) == before + 1


async def test_linking_handles_past_the_cap_is_refused_and_writes_nothing(
    client: Client, writer: dict[str, str], ledger: Ledger
) -> None:
    handles = [f"github:ana{i}" for i in range(MAX_HANDLES)]
    made = await client.post(
        "/v1/members", json={"display_name": "Ana", "handles": handles}, headers=writer
    )
    before = await head(ledger)

    answer = await client.patch(
        f"/v1/members/{made.json()['id']}",
        json={"add_handles": ["github:onemore"]},
        headers=writer,
    )

    problem = assert_problem(answer, 422)
    assert str(MAX_HANDLES) in problem["detail"]
    assert await head(ledger) == before


async def test_a_batch_of_more_items_than_allowed_is_a_400_naming_items(
    client: Client, writer: dict[str, str], ledger: Ledger
) -> None:
    items = registrations(MAX_BATCH_ITEMS + 1, 0)
    before = await head(ledger)

    answer = await client.post("/v1/batch", json={"items": items}, headers=writer)

    problem = assert_problem(answer, 400)
    assert [error["field"] for error in problem["errors"]] == ["items"]
    assert await head(ledger) == before


async def test_a_batch_body_past_its_bytes_is_a_413(
    client: Client, writer: dict[str, str], ledger: Ledger
) -> None:
    body = json.dumps({"items": registrations(1, 0), "pad": " " * MAX_BATCH_BYTES}).encode()
    before = await head(ledger)

    answer = await client.post("/v1/batch", content=body, headers=writer)

    assert_problem(answer, 413)
    assert await head(ledger) == before


def test_the_openapi_document_states_the_batch_limits() -> None:
    batch = DOCUMENT["paths"]["/v1/batch"]["post"]
    items = DOCUMENT["components"]["schemas"]["Batch"]["properties"]["items"]

    assert items["maxItems"] == MAX_BATCH_ITEMS
    assert f"{MAX_BATCH_ITEMS:,}" in batch["description"]
    assert f"{MAX_BATCH_BYTES // 2**20} MiB" in batch["description"]
    handles = DOCUMENT["components"]["schemas"]["MemberCreate"]["properties"]["handles"]
    assert handles["maxItems"] == MAX_HANDLES
    overview = DOCUMENT["info"]["description"]
    assert f"at most {MAX_BODY // 2**20} MiB" in overview
    assert f"nested at most {MAX_DEPTH} deep" in overview
    assert "NUL" in overview


@pytest.fixture
def served(database_url: str, write_token: str) -> Iterator[str]:
    """The app behind a real uvicorn on a free port, in a thread: its own event loop, so a
    request that blocked that loop would delay every other (the test client serialises)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        create_app(database_url), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


async def test_health_answers_while_the_largest_batch_is_written(
    served: str, writer: dict[str, str], ledger: Ledger
) -> None:
    # The largest allowed batch, and the costliest to decide: every item a registration
    # with every handle a member may hold, each non-ASCII (checked for confusables).
    body = json.dumps({"items": registrations(MAX_BATCH_ITEMS, MAX_HANDLES)}).encode()
    assert len(body) <= MAX_BATCH_BYTES
    before = await head(ledger)

    async with httpx.AsyncClient(base_url=served, timeout=120) as http:

        async def probe() -> float:
            started = time.perf_counter()
            answer = await http.get("/health")
            assert answer.status_code == 200
            return time.perf_counter() - started

        await probe()  # a connection ready
        started = time.perf_counter()
        batch = asyncio.create_task(http.post("/v1/batch", content=body, headers=writer))
        # Probes on a clock, not one after another: were the server's loop stalled, every
        # probe sent meanwhile would wait, not just the one in flight.
        probes = []
        while not batch.done():
            probes.append(asyncio.create_task(probe()))
            await asyncio.sleep(0.02)
        written = await batch
        batch_seconds = time.perf_counter() - started
        latencies = list(await asyncio.gather(*probes))

    assert written.status_code == 201, written.text[:500]
    assert await head(ledger) == before + MAX_BATCH_ITEMS
    assert len(latencies) >= 5, f"the batch ended before /health was probed: {latencies}"
    # Were the server's loop held by the batch, a probe would wait for most of it. The
    # median, and a share of the batch's own time rather than a number of milliseconds, so
    # neither a scheduling hiccup nor a loaded machine decides it.
    assert statistics.median(latencies) < batch_seconds * PROBE_SHARE, (batch_seconds, latencies)
