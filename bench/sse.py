"""Workload 7: the live event stream, 200 clients while 1,000 events/s are appended.

`community-ledger serve --workers 2 --no-projector` (as compose.yaml runs it) serves a
fresh migrated database. 50 members are registered through the API. Then, in each
repetition, a spawned process opens 200 streams (`GET /v1/events/stream` from the head,
raw keep-alive sockets) and another appends through the API at 1,000 events/s: a
`POST /v1/batch` of 10 contributions every 10 ms, paced on the clock, on 8 connections.

Delivery latency is, per event and per stream, the time from the moment the batch's
answer was received (the append acknowledged) to the moment the stream's message with
that `id:` was read by the client: both on this machine's wall clock. A stream the
server drops as a slow consumer must have received a gap-free prefix, any other stream
every appended event in order, or the workload fails; the drops are counted. The
server's memory is the resident set of `serve` and its workers together, sampled every
200 ms; its peak is reported. The 2 cores are shared by the server, PostgreSQL, the
streams' client and the appender: these are loopback figures, client included.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from bench.core import Bench, Ratio, Result
from bench.http import _register_members, create_key, running_server
from bench.loadgen import STREAM_LIMIT, request

STREAMS = int(os.environ.get("BENCH_SSE_STREAMS", "200"))
RATE = 1000
"""Events per second appended."""
BATCH = int(os.environ.get("BENCH_SSE_BATCH", "10"))
"""Events per `POST /v1/batch`, sent every BATCH / RATE s: the append load's shape."""
WRITERS = 8
"""Each connection sends its next batch only once the last is answered: enough of them
that slow answers on a busy server do not hold back the pace."""
WORKERS = 2
MEMBERS = 50
LONGEST = 120.0
_EVENT_ID = re.compile(rb"\nid: (\d+)\nevent: ")
"""An event's id in text that starts at a message (findall on b"\n" + text). Every id line
follows a newline: the end of the message before, or of a chunk's size line (the body is
chunked, and the client reads the raw bytes). A literal start lets `re` skip ahead
instead of trying a `^` at every byte (a ninth of the time)."""


def run(bench: Bench) -> list[Result | Ratio]:
    duration = 10.0 if bench.scale >= 1 else 3.0
    samples: dict[str, list[float]] = {}
    with bench.database(prefix="bench_sse") as url, running_server(url, WORKERS) as port:
        token = create_key(url)
        auth = {"Authorization": f"Bearer {token}"}
        members = _register_members(port, auth, MEMBERS)
        serving = _serve_pid(port)
        for repetition in range(bench.repetitions):
            figures = _measure(port, auth, members, duration, repetition, serving)
            bench.log(
                f"{STREAMS} streams, {RATE:,} events/s for {duration:g} s: "
                f"p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms, "
                f"max {figures['max']:.1f} ms, {figures['deliveries']:,.0f} deliveries, "
                f"appended {figures['appended rate']:,.0f} events/s, "
                f"server RSS {figures['rss']:.0f} MiB, "
                f"server CPU {figures['server us']:.2f} µs and client CPU "
                f"{figures['client us']:.2f} µs per delivery, "
                f"{figures['dropped']:.0f} streams dropped as slow consumers"
            )
            for name, value in figures.items():
                samples.setdefault(name, []).append(value)
    note = f"{STREAMS} streams, {RATE:,} events/s for {duration:g} s, {WORKERS} workers"
    p50, p99, rss, rate = (
        Result("sse", "delivery p50", "ms", samples["p50"], False, note),
        Result("sse", "delivery p99", "ms", samples["p99"], False, note),
        Result("sse", "server RSS (serve and its workers)", "MiB", samples["rss"], False, note),
        Result("sse", "events appended", "events/s", samples["appended rate"], True, note),
    )
    dropped = Result(
        "sse", "streams dropped as slow consumers", "streams", samples["dropped"], False, note
    )
    # Processor time is less sensitive to a shared machine's noise than latency is.
    server_cpu = Result(
        "sse",
        "server CPU per delivery (serve and workers)",
        "µs",
        samples["server us"],
        False,
        note,
    )
    client_cpu = Result("sse", "client CPU per delivery", "µs", samples["client us"], False, note)
    return [
        p50,
        p99,
        rss,
        rate,
        dropped,
        server_cpu,
        client_cpu,
        Ratio(f"sse: delivery p99 ms ({note})", p99, None, target=100, at_most=True),
        # The latency counts only at the rate asked for: a machine too busy to append it
        # shows here, not as a flattering p99.
        Ratio(f"sse: events appended per second ({note})", rate, None, target=RATE * 0.95),
    ]


def _measure(
    port: int,
    auth: dict[str, str],
    members: Sequence[str],
    duration: float,
    repetition: int,
    serving: int,
) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    head = _head(port, auth)
    with context.Manager() as manager, context.Pool(2) as pool:
        last = manager.Value("q", 0)  # the last position appended, once all are: where to stop
        # The streams open and settle first; the appends start on the clock after them.
        start_at = time.time() + 3.0
        streams = pool.apply_async(_streams, (port, auth, head, start_at, duration, last))
        peak = _PeakMemory(serving)
        with peak:
            time.sleep(max(0.0, start_at - time.time()))
            cpu_before = _cpu_seconds(_tree(serving))
            acks, began = pool.apply(_append, (port, auth, members, repetition, start_at, duration))
            last.value = max(position for position, _ in acks)
            received, client_cpu = streams.get(timeout=duration + LONGEST + 30)
            server_cpu = _cpu_seconds(_tree(serving)) - cpu_before
    acked = dict(acks)
    appended = sorted(acked)
    latencies: list[float] = []
    dropped = 0
    for stream, was_dropped in received:
        positions = [position for position, _ in stream]
        # A dropped stream got a gap-free prefix; any other stream got everything.
        if positions != appended[: len(positions)] or (
            not was_dropped and len(positions) != len(appended)
        ):
            raise RuntimeError(
                f"a stream received {len(positions)} events of the {len(appended)} appended "
                "(or out of order)"
            )
        dropped += was_dropped
        latencies += [(at - acked[position]) * 1000 for position, at in stream]
    latencies.sort()
    return {
        "p50": _percentile(latencies, 50),
        "p99": _percentile(latencies, 99),
        "max": latencies[-1],
        "deliveries": len(latencies),
        # From the appender's first batch: its process may start after `start_at`.
        "appended rate": len(acked) / (max(acked.values()) - began),
        "rss": peak.mib,
        "dropped": dropped,
        "server us": server_cpu / len(latencies) * 1e6,
        "client us": client_cpu / len(latencies) * 1e6,
    }


def _percentile(ordered: list[float], p: float) -> float:
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def _head(port: int, auth: dict[str, str]) -> int:
    """The last position now: the streams start after it."""

    async def read() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=STREAM_LIMIT)
        after = 0
        try:
            while True:
                path = f"/v1/events?after={after}&limit=1000"
                writer.write(request("GET", path, headers=auth))
                page = json.loads((await _read_answer(reader))[1])
                if page["next_after"] == after:
                    return after
                after = page["next_after"]
        finally:
            writer.close()

    return asyncio.run(read())


async def _read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
    if length is None:
        raise RuntimeError(f"no Content-Length in {head[:200]!r}")
    return head, await reader.readexactly(int(length.group(1)))


def _streams(
    port: int, auth: dict[str, str], after: int, start_at: float, duration: float, last: Any
) -> tuple[list[tuple[list[tuple[int, float]], bool]], float]:
    """In a process of its own: STREAMS clients, each (position, wall time read) per event,
    and whether the server dropped it as a slow consumer; and this process's processor
    time from `start_at` until every stream is done."""
    return asyncio.run(_read_streams(port, auth, after, start_at, duration, last))


async def _read_streams(
    port: int, auth: dict[str, str], after: int, start_at: float, duration: float, last: Any
) -> tuple[list[tuple[list[tuple[int, float]], bool]], float]:
    # Until a stream has the last event appended (the parent says which once the appends
    # are over), or the server drops it, or LONGEST s after the appends.
    longest = start_at + duration + LONGEST
    loop = asyncio.get_running_loop()
    sent = request("GET", "/v1/events/stream", headers={**auth, "Last-Event-ID": str(after)})
    clients = [_StreamClient(loop, sent) for _ in range(STREAMS)]
    for client in clients:
        await loop.create_connection(functools.partial(_same, client), "127.0.0.1", port)

    async def watch() -> float:
        """The processor time this process has used from `start_at` until every stream is
        done; ends each stream once it has the last event appended, or at `longest`."""
        await asyncio.sleep(max(0.0, start_at - time.time()))
        cpu_at_start = time.process_time()
        expected = 0
        while not all(client.done.done() for client in clients):
            await asyncio.sleep(0.2)
            if not expected:
                expected = await asyncio.to_thread(lambda: int(last.value))
            for client in clients:
                if (expected and client.newest >= expected) or time.time() > longest:
                    client.finish()
        return time.process_time() - cpu_at_start

    cpu = await watch()
    for client in clients:
        client.done.result()  # a stream that failed fails the workload
    received = [
        ([(int(found), at) for at, ids in client.reads for found in ids], client.dropped)
        for client in clients
    ]
    return received, cpu


def _same(client: _StreamClient) -> _StreamClient:
    return client


class _StreamClient(asyncio.Protocol):
    """One stream, read in the transport's callback (no task and no future per read).

    Keeps the ids of each read's complete messages with the wall time of the read, and
    turns them into numbers only once every stream is done, so that the client spends its
    time reading while the others still measure. Each event's latency is still the time
    of the read that held it, less its append's acknowledgement."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sent: bytes) -> None:
        self.sent = sent
        self.head: bytes | None = b""
        """The answer's head until it is complete, then None."""
        self.buffer = b""
        self.reads: list[tuple[float, list[bytes]]] = []
        self.newest = 0
        """The last id read."""
        self.dropped = False
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.sent)

    def data_received(self, data: bytes) -> None:
        at = time.time()
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 200"):
                self.finish(RuntimeError(f"the stream answered {self.head[:200]!r}"))
                return
            data, self.head = self.head[end + 4 :], None
        self.buffer += data
        if b": slow consumer" in self.buffer:  # the server dropped this client
            self.dropped = True
            self.reads.append((at, _EVENT_ID.findall(b"\n" + self.buffer)))
            self.finish()
            return
        cut = self.buffer.rfind(b"\n\n")
        if cut < 0:
            return
        complete, self.buffer = self.buffer[: cut + 2], self.buffer[cut + 2 :]
        ids = _EVENT_ID.findall(b"\n" + complete)
        if ids:
            self.reads.append((at, ids))
            self.newest = int(ids[-1])

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish(RuntimeError("a stream ended early"))

    def finish(self, error: Exception | None = None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()


def _append(
    port: int,
    auth: dict[str, str],
    members: Sequence[str],
    repetition: int,
    start_at: float,
    duration: float,
) -> tuple[list[tuple[int, float]], float]:
    """In a process of its own: BATCH events every BATCH / RATE s on WRITERS connections;
    (position, wall time the answer came) for each event, and the wall time of the first
    batch sent."""
    return asyncio.run(_append_paced(port, auth, members, repetition, start_at, duration))


async def _append_paced(
    port: int,
    auth: dict[str, str],
    members: Sequence[str],
    repetition: int,
    start_at: float,
    duration: float,
) -> tuple[list[tuple[int, float]], float]:
    interval = BATCH / RATE
    batches = int(duration / interval)
    headers = {**auth, "Content-Type": "application/json"}
    acks: list[tuple[int, float]] = []
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    def body(n: int) -> bytes:
        items = [
            {
                "command": "record_contribution",
                "member": members[(n * BATCH + i) % len(members)],
                "kind": "chat_answer",
                "space": "bench",
                "title": f"sse {repetition}-{n}-{i}",
            }
            for i in range(BATCH)
        ]
        return request(
            "POST", "/v1/batch", headers=headers, body=json.dumps({"items": items}).encode()
        )

    async def writer_task() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=STREAM_LIMIT)
        try:
            while (n := await queue.get()) is not None:
                writer.write(body(n))
                head, answer = await _read_answer(reader)
                at = time.time()
                if not head.startswith(b"HTTP/1.1 2"):
                    raise RuntimeError(f"a batch answered {head[:40]!r}: {answer[:300]!r}")
                acks.extend((position, at) for position in json.loads(answer)["positions"])
        finally:
            writer.close()

    writers = [asyncio.create_task(writer_task()) for _ in range(WRITERS)]
    await asyncio.sleep(max(0.0, start_at - time.time()))
    began, began_at = time.perf_counter(), time.time()
    for n in range(batches):
        await asyncio.sleep(max(0.0, began + n * interval - time.perf_counter()))
        queue.put_nowait(n)
    for _ in writers:
        queue.put_nowait(None)
    await asyncio.gather(*writers)
    return acks, began_at


def _serve_pid(port: int) -> int:
    """The `serve` process listening on `port`: of the processes holding the listening
    socket (it and its workers), the one whose parent does not (read from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            if any(
                os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
                for fd in os.listdir(f"/proc/{pid}/fd")
            ):
                holders.add(pid)
        except OSError:
            continue
    roots = [pid for pid in holders if _parent(pid) not in holders]
    if len(roots) != 1:
        raise RuntimeError(f"not one process tree listens on port {port}: {sorted(holders)}")
    return roots[0]


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def _tree(pid: int) -> list[int]:
    found = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    found += _tree(int(child))
        except OSError:
            continue
    return found


def _cpu_seconds(pids: Sequence[int]) -> float:
    """User and system processor time of these processes so far (utime + stime)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _rss_mib(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class _PeakMemory:
    """The highest resident set of a process tree, sampled every 200 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mib = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            self.mib = max(self.mib, _rss_mib(_tree(self.pid)))
