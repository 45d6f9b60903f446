"""Projection catch-up from zero over a generated ledger: events/s and peak memory.

    .venv/bin/python -m bench catchup            # the harness: repetitions, medians, ratios
    .venv/bin/python -m bench.catchup --events 1000000   # one run, with the progress bar

A ledger of `bench.size(1_000_000)` synthetic events over 20,000 members is appended
once into a template database; each repetition copies it (`CREATE DATABASE … TEMPLATE`,
a file copy) and runs every projection from zero with the runner `community-ledger
projections run` uses, in a child process of its own, so that its peak memory
(VmHWM, see bench.core.peak_memory_mib) is that catch-up's alone. The same at
`bench.size(200_000)` shows that memory does not grow with the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from bench.core import Bench, Ratio, Result, machine, peak_memory_mib
from bench.synthetic import fill
from services import bootstrap
from services.database import with_database
from services.projector.progress import Progress
from services.projector.runner import BATCH_SIZE, Runner
from services.store.feed import readable_head
from services.store.ledger import Ledger

MEMBERS = 20_000
TARGET_EVENTS_PER_SECOND = 25_000
MEMORY_GROWTH_AT_MOST = 1.5


def run(bench: Bench) -> list[Result | Ratio]:
    large = bench.size(1_000_000)
    # The small ledger spans several batches too (unless the large one does not): memory
    # is compared batch for batch, not one short batch against many full ones.
    small = max(bench.size(200_000), min(large, 3 * BATCH_SIZE))
    rates: list[float] = []
    peaks: dict[int, list[float]] = {large: [], small: []}
    with filled(bench, small) as small_template, filled(bench, large) as large_template:
        for repetition in range(bench.repetitions):
            for events, template in ((large, large_template), (small, small_template)):
                caught_up, seconds, peak = measure(bench.server_url, template)
                bench.log(
                    f"repetition {repetition + 1}: {caught_up:,} events in {seconds:.1f} s = "
                    f"{caught_up / seconds:,.0f} events/s, peak {peak:,.0f} MiB"
                )
                if events == large:
                    rates.append(caught_up / seconds)
                peaks[events].append(peak)
    rate = Result(
        "catchup",
        f"all projections from zero, {large:,} events",
        "events/s",
        rates,
        note=f"{MEMBERS:,} members, batches of {BATCH_SIZE:,}",
    )
    memory = {
        events: Result(
            "catchup",
            f"peak memory of the catch-up, {events:,} events",
            "MiB",
            samples,
            higher_is_better=False,
        )
        for events, samples in peaks.items()
    }
    return [
        rate,
        memory[small],
        memory[large],
        Ratio("catch-up events/s (absolute)", rate, target=TARGET_EVENTS_PER_SECOND),
        Ratio(
            f"catch-up memory {large:,} / {small:,} events",
            memory[large],
            memory[small],
            target=MEMORY_GROWTH_AT_MOST,
            at_most=True,
        ),
    ]


@contextmanager
def filled(bench: Bench, events: int) -> Iterator[str]:
    """A migrated database holding `events` synthetic events; answers its name."""
    with bench.database(prefix="bench_catchup_ledger") as url:
        started = time.perf_counter()
        asyncio.run(_fill(url, events))
        bench.log(f"ledger of {events:,} events appended in {time.perf_counter() - started:.0f} s")
        # Statistics and visibility as a ledger that has lived a while has them: without
        # them the feed's first reads plan a scan of every later row, not an index walk.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        yield psycopg.conninfo.conninfo_to_dict(url)["dbname"]


async def _fill(url: str, events: int) -> None:
    async with (
        bootstrap.keyring(url) as keyring,
        AsyncConnectionPool(url, min_size=1, max_size=4, open=False) as pool,
    ):
        await fill(Ledger(pool, keyring), events, members=MEMBERS)


def measure(server_url: str, template: str, terminal: bool = False) -> tuple[int, float, float]:
    """Catch up a fresh copy of `template` in a child process: (events, seconds, peak MiB)."""
    name = f"bench_catchup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
            url = with_database(server_url, name)
            return child.submit(catch_up, url, terminal).result()
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def catch_up(url: str, terminal: bool) -> tuple[int, float, float]:
    """In the child: every projection from zero; (events, seconds, peak MiB of this process)."""
    events = asyncio.run(_head(url))  # appended one batch after another: positions 1..head
    progress = Progress.for_terminal() if terminal else Progress()
    started = time.perf_counter()
    failures = asyncio.run(Runner(url, progress=progress).run())
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"catch-up failed: {failures}")
    return events, seconds, peak_memory_mib()


async def _head(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await readable_head(conn)


def main() -> None:
    from services.embedded_db import embedded_server_url
    from services.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    settings = load_settings()
    bench = Bench(server_url=settings.database_url or embedded_server_url(settings.data_dir))
    with filled(bench, args.events) as template:
        events, seconds, peak = measure(bench.server_url, template, terminal=True)
    print(
        f"catch-up of all projections from zero: {events:,} events in {seconds:.1f} s = "
        f"{events / seconds:,.0f} events/s; peak memory of the process {peak:,.0f} MiB"
    )
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
