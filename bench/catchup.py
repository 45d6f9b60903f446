"""Projection catch-up from zero over a generated ledger: events/s and peak memory.

    .venv/bin/python -m bench catchup            # the harness: repetitions, medians, ratios
    .venv/bin/python -m bench.catchup --events 1000000   # one run, with the progress bar
    .venv/bin/python -m bench.catchup --events 200000 --peer main --only community_health
        # that projection alone, this tree's code and main's taking turns on one ledger
    .venv/bin/python -m bench.catchup --events 1000000 --plain --only older --repetitions 3
        # the same code on the same events appended sealed and in clear, taking turns:
        # what opening the boxes costs a catch-up (issue 12)

A ledger of `bench.size(1_000_000)` synthetic events over 20,000 members is appended
once into a template database; each repetition copies it (`CREATE DATABASE … TEMPLATE`,
a file copy) and runs every projection (`PROJECTIONS`) from zero with the runner
`community-ledger projections run` uses, in a child process of its own, so that its peak
memory (VmHWM, see bench.core.peak_memory_mib) is that catch-up's alone. The same at
`bench.size(200_000)` shows that memory does not grow with the ledger. The table shows
beside it the figure recorded before issue 15 (`RECORDED`), which no run here measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from bench.core import Bench, Ratio, Result, machine, peak_memory_mib
from bench.peer_tree import ROOT, run_in_tree, tree_of
from bench.synthetic import fill
from services import bootstrap
from services.database import with_database
from services.projector.appliers import projection_names
from services.projector.progress import Progress
from services.projector.runner import BATCH_SIZE, Runner
from services.store.feed import readable_head
from services.store.ledger import Ledger

MEMBERS = 20_000
TARGET_EVENTS_PER_SECOND = 25_000
MEMORY_GROWTH_AT_MOST = 1.5
RECORDED = Result(
    "catchup",
    "recorded before issue 15: three projections, 1,000,000 events (not measured here)",
    "events/s",
    [21_032, 20_732, 21_798],
    note="docs/performance.md, Projection catch-up (run 2), a quiet machine",
)
OLDER = ("member_profiles", "contribution_counts", "connections", "interaction_counts")
"""The projections from before issue 15, the reference `--only older` stands for."""


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
    every = projection_names()
    rate = Result(
        "catchup",
        f"every projection ({len(every)}) from zero, {large:,} events",
        "events/s",
        rates,
        note=f"{', '.join(every)}; {MEMBERS:,} members, batches of {BATCH_SIZE:,}",
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
        RECORDED,
        memory[small],
        memory[large],
        Ratio("catch-up events/s (absolute)", rate, target=TARGET_EVENTS_PER_SECOND),
        Ratio("catch-up events/s, every projection / recorded three", rate, RECORDED),
        Ratio(
            f"catch-up memory {large:,} / {small:,} events",
            memory[large],
            memory[small],
            target=MEMORY_GROWTH_AT_MOST,
            at_most=True,
        ),
    ]


@contextmanager
def filled(bench: Bench, events: int, sealing: bool = True) -> Iterator[str]:
    """A migrated database holding `events` synthetic events; answers its name.

    `sealing` False appends their personal fields in clear (`Ledger`'s bench-only switch)."""
    with bench.database(prefix="bench_catchup_ledger") as url:
        started = time.perf_counter()
        asyncio.run(_fill(url, events, sealing))
        bench.log(f"ledger of {events:,} events appended in {time.perf_counter() - started:.0f} s")
        # Statistics and visibility as a ledger that has lived a while has them: without
        # them the feed's first reads plan a scan of every later row, not an index walk.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        yield psycopg.conninfo.conninfo_to_dict(url)["dbname"]


async def _fill(url: str, events: int, sealing: bool = True) -> None:
    async with (
        bootstrap.keyring(url) as keyring,
        AsyncConnectionPool(url, min_size=1, max_size=4, open=False) as pool,
    ):
        await fill(Ledger(pool, keyring, sealing=sealing), events, members=MEMBERS)


def measure(
    server_url: str,
    template: str,
    terminal: bool = False,
    names: tuple[str, ...] = (),
    tree: str | None = None,
) -> tuple[int, float, float]:
    """Catch up a fresh copy of `template` in a child process: (events, seconds, peak MiB).

    Every projection, or those `names`; with the code of this tree, or of `tree` (a
    folder holding another revision's code, see bench.peer_tree).
    """
    name = f"bench_catchup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        url = with_database(server_url, name)
        if tree is not None:
            return run_in_tree(tree, url, names)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
            return child.submit(catch_up, url, terminal, names).result()
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def catch_up(url: str, terminal: bool, names: tuple[str, ...] = ()) -> tuple[int, float, float]:
    """In the child: the projections from zero; (events, seconds, peak MiB of this process)."""
    events = asyncio.run(_head(url))  # appended one batch after another: positions 1..head
    progress = Progress.for_terminal() if terminal else Progress()
    started = time.perf_counter()
    failures = asyncio.run(Runner(url, names, progress=progress).run())
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
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="NAME",
        help="catch up only these projections, each set on its own ('older': "
        f"{', '.join(OLDER)}; 'all': every one); default: every projection at once",
    )
    parser.add_argument(
        "--peer",
        metavar="REVISION",
        help="also time a git revision's code (e.g. main) on the same ledger, taking turns",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="also append the same events in clear (a bench-only switch) and catch that "
        "copy up too, taking turns: what opening the sealed fields costs",
    )
    parser.add_argument("--repetitions", type=int, default=1)
    args = parser.parse_args()
    settings = load_settings()
    bench = Bench(server_url=settings.database_url or embedded_server_url(settings.data_dir))
    sets = [_names(only) for only in args.only] or [()]
    with contextlib.ExitStack() as stack:
        # With a peer, both sides run the same way: a plain child process of their tree.
        trees: dict[str, str | None] = {"this tree": str(ROOT) if args.peer else None}
        if args.peer:
            trees[args.peer] = stack.enter_context(tree_of(args.peer))
        templates = {"sealed": stack.enter_context(filled(bench, args.events))}
        if args.plain:
            templates["in clear"] = stack.enter_context(filled(bench, args.events, sealing=False))
        quiet = bool(args.peer or args.plain)
        for repetition in range(args.repetitions):
            for names in sets:
                for label, tree in trees.items():
                    for ledger, template in templates.items():
                        load = os.getloadavg()[0]
                        events, seconds, peak = measure(
                            bench.server_url, template, terminal=not quiet, names=names, tree=tree
                        )
                        print(
                            f"{repetition + 1} {label}, ledger {ledger}: "
                            f"{', '.join(names) or 'every projection'}: {events:,} events in "
                            f"{seconds:.1f} s = {events / seconds:,.0f} events/s; peak "
                            f"{peak:,.0f} MiB; load {load:.1f} to {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
    print(f"machine: {machine()}")


def _names(only: str) -> tuple[str, ...]:
    return {"older": OLDER, "all": ()}.get(only, tuple(only.split(",")))


if __name__ == "__main__":
    main()
