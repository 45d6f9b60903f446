"""Projection catch-up from zero over a generated ledger: events/s and peak memory.

    .venv/bin/python -m bench.catchup --events 1000000

Starts (or joins) the embedded PostgreSQL unless DATABASE_URL names a server, makes a
fresh database, fills it with `bench.synthetic`, then runs every projection from zero
with the same runner `community-ledger projections run` uses, and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import time
import uuid

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from bench.synthetic import fill
from services import migrate
from services.database import with_database
from services.embedded_db import embedded_server_url
from services.projector.progress import Progress
from services.projector.runner import Runner
from services.settings import load_settings
from services.store.ledger import Ledger


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                "",
            )
    except OSError:
        pass
    cpu = model or platform.processor()
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


async def run(events: int, members: int, batch_size: int) -> None:
    settings = load_settings()
    server = settings.database_url or embedded_server_url(settings.data_dir)
    name = f"bench_catchup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server, name)
    try:
        migrate.upgrade(url)
        async with AsyncConnectionPool(url, min_size=1, max_size=4, open=False) as pool:
            started = time.perf_counter()
            head = await fill(Ledger(pool), events, members=members)
            filled = time.perf_counter() - started
        print(
            f"ledger: {head:,} events over {members:,} members, appended in {filled:.1f} s "
            f"({head / filled:,.0f} events/s in batches of 5,000)",
            flush=True,
        )
        started = time.perf_counter()
        failures = await Runner(url, batch_size=batch_size, progress=Progress.for_terminal()).run()
        took = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"catch-up of all projections from zero: {head:,} events in {took:.1f} s = "
            f"{head / took:,.0f} events/s; peak memory of the process {peak:,.0f} MiB; "
            f"failures: {failures or 'none'}"
        )
        print(f"machine: {machine()}")
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.members, args.batch_size))


if __name__ == "__main__":
    main()
