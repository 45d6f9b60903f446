"""Single-event appends, 1 and 8 writers: ours, the peer, and plain INSERTs (the ceiling).

Every writer appends to streams of its own, EVENTS_PER_STREAM events each, every event
with the expected version it saw, for a fixed time; a sample is events/s over all writers.
Each sample gets a fresh database, and the variants take turns within a repetition
(ours, peer, ceiling, ours, …) so the machine's drift hits all of them alike.

- ours: `Ledger.append([event], expected_versions={stream: v})`, writers as asyncio tasks
  on one AsyncConnectionPool of POOL_SIZE connections (what the API server does);
- the peer: one aggregate event per `Application.save()`, writers as threads (its API is
  synchronous), on its own pool of POOL_SIZE connections;
- the ceiling: one autocommitted `INSERT` of the same row per event into a copy of our
  table, writers as asyncio tasks on the same kind of pool as ours.
synchronous_commit stays on for all three: every acknowledged event survives a crash.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from bench import peers
from bench.core import Bench, Ratio, Result
from services import bootstrap
from services.store.ledger import Ledger

WRITERS = (1, 8)
POOL_SIZE = 8
EVENTS_PER_STREAM = 10
SECONDS = 5.0
"""Per sample at scale 1; `--quick` runs a tenth of it."""
NOTES = {
    "ours": f"Ledger.append with expected versions; asyncio tasks, pool of {POOL_SIZE}",
    peers.PEER: f"Application.save of one aggregate event; threads, pool of {POOL_SIZE}",
    "ceiling": f"autocommitted INSERT into a copy of events; asyncio tasks, pool of {POOL_SIZE}",
}


def run(bench: Bench) -> list[Result | Ratio]:
    seconds = max(0.2, SECONDS * bench.scale)
    payloads = peers.Payloads()
    variants: dict[str, Callable[[str, int, float, peers.Payloads], float]] = {
        "ours": _ours,
        peers.PEER: _peer,
        "ceiling": _ceiling,
    }
    if not peers.PEER_INSTALLED:
        bench.log(peers.PEER_MISSING)
        del variants[peers.PEER]
    samples: dict[tuple[str, int], list[float]] = {
        (variant, writers): [] for variant in variants for writers in WRITERS
    }
    bench.log(f"{seconds:.1f} s per sample, {EVENTS_PER_STREAM} events per stream")
    for repetition in range(bench.repetitions):
        for writers in WRITERS:
            for variant, measure in variants.items():
                migrated = variant != peers.PEER  # the peer makes its own tables
                with bench.database(migrated=migrated, prefix="bench_appends") as url:
                    if variant == "ceiling":
                        peers.create_ceiling_table(url)
                    rate = measure(url, writers, seconds, payloads)
                samples[variant, writers].append(rate)
                bench.log(f"#{repetition + 1} {variant}, {_writers(writers)}: {rate:,.0f} events/s")

    results = {
        key: Result(
            workload="appends",
            variant=f"{key[0]}, {_writers(key[1])}",
            unit="events/s",
            samples=values,
            note=NOTES[key[0]],
        )
        for key, values in samples.items()
    }
    ratios: list[Ratio] = []
    for writers in WRITERS:
        ours = results["ours", writers]
        if peers.PEER_INSTALLED:
            ratios.append(
                Ratio(
                    f"appends, {_writers(writers)}: ours / {peers.PEER}",
                    ours,
                    results[peers.PEER, writers],
                    target=2.0 if writers == 8 else None,
                )
            )
        ratios.append(
            Ratio(
                f"appends, {_writers(writers)}: ours / ceiling", ours, results["ceiling", writers]
            )
        )
    return [*results.values(), *ratios]


def _writers(count: int) -> str:
    return f"{count} writer{'s' if count > 1 else ''}"


async def _timed_tasks(
    writers: int, seconds: float, write: Callable[[int, int], Awaitable[None]]
) -> float:
    """Run `writers` tasks calling `write(writer, n)` until the time is up; answer events/s."""
    deadline = time.perf_counter() + seconds

    async def writer(index: int) -> int:
        count = 0
        while time.perf_counter() < deadline:
            await write(index, count)
            count += 1
        return count

    started = time.perf_counter()
    counts = await asyncio.gather(*(writer(index) for index in range(writers)))
    return sum(counts) / (time.perf_counter() - started)


def _ours(url: str, writers: int, seconds: float, payloads: peers.Payloads) -> float:
    async def measure() -> float:
        async with (
            bootstrap.keyring(url) as keyring,
            AsyncConnectionPool(url, min_size=POOL_SIZE, max_size=POOL_SIZE, open=False) as pool,
        ):
            await pool.wait()
            ledger = Ledger(pool, keyring)

            async def write(writer: int, count: int) -> None:
                stream = f"bench-{writer}-{count // EVENTS_PER_STREAM}"
                new = payloads.new_event(stream)
                await ledger.append([new], expected_versions={stream: count % EVENTS_PER_STREAM})

            return await _timed_tasks(writers, seconds, write)

    return asyncio.run(measure())


def _ceiling(url: str, writers: int, seconds: float, payloads: peers.Payloads) -> float:
    async def measure() -> float:
        async with AsyncConnectionPool(
            url,
            min_size=POOL_SIZE,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True},
            open=False,
        ) as pool:
            await pool.wait()

            async def write(writer: int, count: int) -> None:
                new = payloads.new_event(f"bench-{writer}-{count // EVENTS_PER_STREAM}")
                row = peers.ceiling_row(new, count % EVENTS_PER_STREAM + 1)
                async with pool.connection() as conn:
                    await conn.execute(peers.INSERT_CEILING, row, prepare=True)

            return await _timed_tasks(writers, seconds, write)

    return asyncio.run(measure())


def _peer(url: str, writers: int, seconds: float, payloads: peers.Payloads) -> float:
    with peers.peer_application(url, POOL_SIZE) as app:
        start = threading.Barrier(writers + 1)
        deadline = [0.0]
        counts = [0] * writers

        def writer(index: int) -> None:
            start.wait()
            aggregate = None
            while time.perf_counter() < deadline[0]:
                data = payloads.peer_data()
                if aggregate is None or aggregate.version == EVENTS_PER_STREAM:
                    aggregate = peers.PeerStream(data=data)
                else:
                    aggregate.record(data=data)
                app.save(aggregate)
                counts[index] += 1

        threads = [threading.Thread(target=writer, args=(index,)) for index in range(writers)]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        deadline[0] = started + seconds
        start.wait()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - started)
