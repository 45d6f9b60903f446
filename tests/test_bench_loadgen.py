"""The benchmark's load generator counts every answer it times, by status, over keep-alive."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.loadgen import Load, Outcome, measure, request

BIG = b"x" * 200_000


class TinyServer:
    """HTTP/1.1 on a thread of its own: /ok, /missing (404), /chunked, /big, /close."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                path = head.split(b" ")[1].decode()
                self.seen[path] += 1
                writer.write(_answer(path))
                await writer.drain()
                if path == "/close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def __enter__(self) -> TinyServer:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _answer(path: str) -> bytes:
    match path:
        case "/missing":
            return b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found"
        case "/chunked":
            chunks = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
        case "/big":
            return b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(BIG), BIG)
        case "/close":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        case _:
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15"
            return head + b'\r\n\r\n{"status":"ok"}'


@pytest.fixture(scope="module")
def server() -> Iterator[TinyServer]:
    with TinyServer() as running:
        yield running


def _check_consistent(outcome: Outcome) -> None:
    assert outcome.errors == []
    assert outcome.answers > 0
    assert len(outcome.latencies) == outcome.answers
    assert all(latency > 0 for latency in outcome.latencies)
    assert outcome.percentile(50) <= outcome.percentile(99) <= max(outcome.latencies)


def test_every_answer_is_counted_by_status_with_its_latency(server: TinyServer) -> None:
    paths = ["/ok", "/missing", "/chunked", "/big", "/close"]
    load = Load(
        requests=[request("GET", path) for path in paths],
        connections=5,
        duration=1.0,
        warmup=0.2,
    )
    before = sum(server.seen.values())

    outcome = measure("127.0.0.1", server.port, load)

    _check_consistent(outcome)
    assert set(outcome.statuses) == {200, 201, 404}
    # Connection i sends paths[i] every time (5 connections stride over 5 requests).
    assert outcome.non_2xx == outcome.statuses[404]
    assert outcome.rate == pytest.approx(outcome.answers / outcome.elapsed)
    assert sum(server.seen.values()) - before >= outcome.answers


def test_a_request_limit_stops_counting_there_across_processes(server: TinyServer) -> None:
    body = b'{"title": "one"}'
    load = Load(
        requests=[request("POST", "/ok", body=body, headers={"Content-Type": "application/json"})],
        connections=4,
        duration=5.0,
        warmup=0.1,
        max_requests=300,
        processes=2,
    )

    outcome = measure("127.0.0.1", server.port, load)

    _check_consistent(outcome)
    assert outcome.statuses == Counter({200: 300})
    assert outcome.non_2xx == 0


def test_percentiles_take_the_nearest_rank() -> None:
    outcome = Outcome(elapsed=1.0, latencies=[float(n) for n in range(1, 101)])

    assert outcome.percentile(50) == 50.0
    assert outcome.percentile(99) == 99.0
    assert outcome.percentile(100) == 100.0
