"""A small HTTP/1.1 load generator: keep-alive connections on asyncio streams, own process.

The bench machine has only Python, so instead of wrk or oha: each connection sends
pre-encoded requests one after another and reads each answer by its Content-Length (or
its chunks). It runs in a spawned process (or several) so it never shares the GIL with
the caller; on a small machine it still shares the cores with the server it loads,
which the figures must say.

    outcome = measure("127.0.0.1", 8000, Load(requests=[request("GET", "/health")]))
    outcome.rate, outcome.percentile(99), outcome.non_2xx
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

STREAM_LIMIT = 1 << 20


def request(
    method: str,
    path: str,
    *,
    host: str = "127.0.0.1",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> bytes:
    """One HTTP/1.1 keep-alive request, encoded once."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


@dataclass
class Load:
    """What to send: `requests` are cycled, each connection starting at its own offset."""

    requests: Sequence[bytes]
    connections: int = 64
    duration: float = 10.0
    """Seconds measured, after the warm-up."""
    warmup: float = 1.0
    """Seconds of load before measuring (answers then are not counted)."""
    max_requests: int | None = None
    """Stop measuring after this many answers in all (the duration still bounds it)."""
    processes: int = 1


@dataclass
class Outcome:
    """The answers received inside the measured window, with their latencies in seconds."""

    elapsed: float
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Connection failures (reset, refused, malformed answer): each also ends that connection."""

    @property
    def answers(self) -> int:
        return sum(self.statuses.values())

    @property
    def non_2xx(self) -> int:
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    @property
    def rate(self) -> float:
        return self.answers / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """The latency (seconds) below which `p` percent of answers came (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
        return ordered[rank - 1]

    def merge(self, other: Outcome) -> Outcome:
        return Outcome(
            elapsed=max(self.elapsed, other.elapsed),
            statuses=self.statuses + other.statuses,
            latencies=self.latencies + other.latencies,
            errors=self.errors + other.errors,
        )


def measure(host: str, port: int, load: Load) -> Outcome:
    """Run `load` against host:port from `load.processes` spawned processes; merge what they saw."""
    processes = max(1, min(load.processes, load.connections))
    load = replace(load, processes=processes)
    # Every process starts its warm-up at the same wall-clock instant, after spawning.
    start_at = time.time() + 0.5 + 0.25 * processes
    parts = []
    for index in range(processes):
        share = load.connections // processes + (index < load.connections % processes)
        limit = None
        if load.max_requests is not None:
            limit = load.max_requests // processes + (index < load.max_requests % processes)
        parts.append((host, port, load, share, index, limit, start_at))
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        outcomes = pool.starmap(_process, parts)
    merged = outcomes[0]
    for outcome in outcomes[1:]:
        merged = merged.merge(outcome)
    return merged


def _process(
    host: str,
    port: int,
    load: Load,
    connections: int,
    index: int,
    limit: int | None,
    start_at: float,
) -> Outcome:
    return asyncio.run(_drive(host, port, load, connections, index, limit, start_at))


class _Window:
    def __init__(self, start_at: float, load: Load, limit: int | None) -> None:
        begin = time.perf_counter() + (start_at - time.time())
        self.begin = begin + load.warmup
        self.end = self.begin + load.duration
        self.limit = limit
        self.outcome = Outcome(elapsed=0.0)
        self.last_answer = self.begin

    def done(self, now: float) -> bool:
        return now >= self.end or (self.limit is not None and self.outcome.answers >= self.limit)

    def record(self, sent: float, answered: float, status: int) -> None:
        if sent < self.begin or answered > self.end or self.done(sent):
            return
        self.outcome.statuses[status] += 1
        self.outcome.latencies.append(answered - sent)
        self.last_answer = answered


async def _drive(
    host: str,
    port: int,
    load: Load,
    connections: int,
    index: int,
    limit: int | None,
    start_at: float,
) -> Outcome:
    window = _Window(start_at, load, limit)
    stride = load.connections
    tasks = [
        _connection(host, port, load.requests, index + i * load.processes, stride, window)
        for i in range(connections)
    ]
    await asyncio.sleep(max(0.0, window.begin - load.warmup - time.perf_counter()))
    await asyncio.gather(*tasks)
    outcome = window.outcome
    # With a request limit the window closes at the last counted answer, not at its end.
    closed = window.end if limit is None or outcome.answers < limit else window.last_answer
    outcome.elapsed = max(1e-9, closed - window.begin)
    return outcome


async def _connection(
    host: str, port: int, requests: Sequence[bytes], offset: int, stride: int, window: _Window
) -> None:
    count = len(requests)
    turn = offset
    reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
    try:
        while not window.done(time.perf_counter()):
            payload = requests[turn % count]
            turn += stride
            sent = time.perf_counter()
            writer.write(payload)
            try:
                status, keep_alive = await _answer(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                if sent >= window.begin:
                    window.outcome.errors.append(f"{type(error).__name__}: {error}")
                return
            window.record(sent, time.perf_counter(), status)
            if not keep_alive:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
    finally:
        writer.close()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; answer its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP/1.x answer: {head[:40]!r}")
    status = int(head[9:12])
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        await reader.readexactly(int(lower[at + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif not (status < 200 or status in (204, 304)):
        await reader.read()
        keep_alive = False
    return status, keep_alive
