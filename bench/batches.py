"""Batch appends of 1,000 events per transaction: ours, the peer, executemany and COPY.

One writer appends the same realistic batches (bench.synthetic's mix: registrations,
contributions, mentions, recognitions, introductions, each on its own stream with its
tags) through each variant, on a fresh database per sample; the variants take turns
within a repetition, each repetition starting with the next one, so the machine's drift
hits all of them alike. A sample is events/s over the appends alone: batches, rows and
aggregates are built before the clock starts.

- ours: `Ledger.append(batch)`, one call per batch;
- ours, in clear: the same, with `Ledger`'s bench-only switch that stores personal fields
  unsealed (handle tags still hashed): what sealing costs a batch, the same code on both
  sides (issue 12: within 15 %);
- the peer: one `Application.save()` of an aggregate holding 1,000 pending events;
- the ceilings: `executemany` of the plain INSERT, and `COPY … FROM STDIN`, one
  transaction per batch, into a copy of our table (bench/peers.py).

`python -m bench.batches --peer REVISION` times this tree's `Ledger.append` beside another
revision's instead (issue 12's "before": the commit before it), each in a child process of
its own tree on a fresh database migrated by that tree, in pairs whose first side
alternates; besides events/s it reports the CPU per event of the child and of its server
backend, steadier than the wall clock on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from bench import peers
from bench.core import Bench, Ratio, Result, machine, settle
from bench.peer_tree import ROOT, TreeAppends, append_in_tree, tree_of
from bench.synthetic import synthetic_events
from services import bootstrap
from services.store.ledger import Ledger
from services.store.records import NewEvent

IN_CLEAR = "ours, in clear"
BATCH = 1_000
EVENTS = 100_000
"""Per sample at scale 1 (a hundred batches, a few seconds); `--quick` runs ten."""


def run(bench: Bench) -> list[Result | Ratio]:
    total = bench.size(EVENTS, smallest=BATCH) // BATCH * BATCH
    events = list(synthetic_events(total))
    batches = [events[i : i + BATCH] for i in range(0, total, BATCH)]
    variants: dict[str, Callable[[str, list[list[NewEvent]]], float]] = {
        "ours": _ours,
        IN_CLEAR: _ours_in_clear,
        peers.PEER: _peer,
        "executemany": _executemany,
        "COPY": _copy,
    }
    if not peers.PEER_INSTALLED:
        bench.log(peers.PEER_MISSING)
        del variants[peers.PEER]
    samples: dict[str, list[float]] = {variant: [] for variant in variants}
    bench.log(f"{len(batches)} batches of {BATCH:,} events per sample")
    order = list(variants.items())
    for repetition in range(bench.repetitions):
        # Each repetition starts with the next variant: none always runs first, on the
        # coldest server (the first sample of a run is the slowest).
        turn = repetition % len(order)
        for variant, measure in order[turn:] + order[:turn]:
            migrated = variant != peers.PEER  # the peer makes its own tables
            with bench.database(migrated=migrated, prefix="bench_batches") as url:
                if variant in {"executemany", "COPY"}:
                    peers.create_ceiling_table(url)
                rate = measure(url, batches)
            samples[variant].append(rate)
            bench.log(f"#{repetition + 1} {variant}: {rate:,.0f} events/s")

    results = {
        variant: Result(
            workload="batches",
            variant=variant,
            unit="events/s",
            samples=values,
            note=f"{len(batches)} batches of {BATCH:,} events, one transaction each",
        )
        for variant, values in samples.items()
    }
    ours = results["ours"]
    ratios = [
        Ratio("batches: ours / executemany", ours, results["executemany"], target=0.8),
        Ratio("batches: ours / COPY", ours, results["COPY"]),
        Ratio(f"batches: ours / {IN_CLEAR}", ours, results[IN_CLEAR], target=0.85),
    ]
    if peers.PEER_INSTALLED:
        ratios.append(Ratio(f"batches: ours / {peers.PEER}", ours, results[peers.PEER]))
    return [*results.values(), *ratios]


def _ours(url: str, batches: list[list[NewEvent]], sealing: bool = True) -> float:
    async def measure() -> float:
        async with (
            bootstrap.keyring(url) as keyring,
            AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool,
        ):
            await pool.wait()
            ledger = Ledger(pool, keyring, sealing=sealing)
            settle()
            started = time.perf_counter()
            for batch in batches:
                await ledger.append(batch)
            return _rate(batches, started)

    return asyncio.run(measure())


def _ours_in_clear(url: str, batches: list[list[NewEvent]]) -> float:
    return _ours(url, batches, sealing=False)


def _executemany(url: str, batches: list[list[NewEvent]]) -> float:
    return asyncio.run(_ceiling(url, _ceiling_batches(batches), copy=False))


def _copy(url: str, batches: list[list[NewEvent]]) -> float:
    return asyncio.run(_ceiling(url, _ceiling_batches(batches), copy=True))


def _ceiling_batches(batches: list[list[NewEvent]]) -> list[list[tuple[Any, ...]]]:
    rows = peers.ceiling_rows([new for batch in batches for new in batch])
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


async def _ceiling(url: str, batches: list[list[tuple[Any, ...]]], *, copy: bool) -> float:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        settle()
        started = time.perf_counter()
        for rows in batches:
            async with conn.transaction(), conn.cursor() as cur:
                if copy:
                    async with cur.copy(peers.COPY_CEILING) as writer:
                        for row in rows:
                            await writer.write_row(row)
                else:
                    await cur.executemany(peers.INSERT_CEILING, rows)
        return _rate(batches, started)


def _peer(url: str, batches: list[list[NewEvent]]) -> float:
    aggregates = []
    for batch in batches:
        payloads = [msgspec.json.decode(new.data) for new in batch]
        aggregate = peers.PeerStream(data=payloads[0])
        for data in payloads[1:]:
            aggregate.record(data=data)
        aggregates.append(aggregate)
    with peers.peer_application(url, pool_size=1) as app:
        settle()
        started = time.perf_counter()
        for aggregate in aggregates:
            app.save(aggregate)
        return _rate(batches, started)


def _rate(batches: list[Any], started: float) -> float:
    return sum(len(batch) for batch in batches) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Batch appends of this tree beside another revision's, in pairs."
    )
    parser.add_argument("--peer", required=True, metavar="REVISION", help="e.g. d47ff88")
    parser.add_argument("--events", type=int, default=EVENTS, help=f"per sample ({EVENTS:,})")
    parser.add_argument("--repetitions", type=int, default=8, help="pairs (8)")
    args = parser.parse_args()
    bench = Bench.standalone()
    total = max(BATCH, args.events // BATCH * BATCH)
    with tree_of(args.peer) as peer:
        order = [("this tree", str(ROOT)), (args.peer, peer)]
        samples: dict[str, list[TreeAppends]] = {label: [] for label, _ in order}
        for repetition in range(args.repetitions):
            for label, tree in order if repetition % 2 == 0 else order[::-1]:
                load = os.getloadavg()[0]
                with bench.database(migrated=False, prefix="bench_batches") as url:
                    appends = append_in_tree(tree, url, total, BATCH)
                samples[label].append(appends)
                print(
                    f"#{repetition + 1} {label}: {_figures(appends)}; "
                    f"load {load:.1f} to {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    print(f"{total:,} events in batches of {BATCH:,}, {args.repetitions} pairs; medians:")
    for label, runs in samples.items():
        print(f"  {label}: {_figures(_median(runs))}")
    ours, theirs = (_median(samples[label]) for label, _ in order)
    pairs = [b.seconds / a.seconds for a, b in zip(*samples.values(), strict=True)]
    print(
        f"this tree / {args.peer}, events/s: {theirs.seconds / ours.seconds:.2f} by medians, "
        f"{statistics.median(pairs):.2f} the pairs' median ({min(pairs):.2f} to {max(pairs):.2f})"
    )
    if ours.backend is not None and theirs.backend is not None:
        ratio = (theirs.cpu + theirs.backend) / (ours.cpu + ours.backend)
        print(
            f"this tree / {args.peer}, events per CPU second (here and in the server): {ratio:.2f}"
        )
    print(f"machine: {machine()}")


def _median(samples: list[TreeAppends]) -> TreeAppends:
    backends = [s.backend for s in samples if s.backend is not None]
    return TreeAppends(
        samples[0].events,
        statistics.median(s.seconds for s in samples),
        statistics.median(s.cpu for s in samples),
        statistics.median(backends) if len(backends) == len(samples) else None,
    )


def _figures(appends: TreeAppends) -> str:
    per_event = 1e6 / appends.events
    backend = "n/a" if appends.backend is None else f"{appends.backend * per_event:.1f} µs"
    return (
        f"{appends.events / appends.seconds:,.0f} events/s; CPU per event "
        f"{appends.cpu * per_event:.1f} µs here, {backend} in the server"
    )


if __name__ == "__main__":
    main()
