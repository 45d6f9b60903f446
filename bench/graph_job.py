"""The connector score's whole graph job on a ledger of issue 15's size: betweenness,
the leaderboards ending today and every past end day, as `when_idle` runs them.

    .venv/bin/python -m bench graph          # beside the betweenness-only figures
    .venv/bin/python -m bench.graph_job [--quick] [--repetitions N]

A synthetic ledger (`bench.synthetic`, dated over 2025) of `bench.size(EVENTS)` events over
20,000 members, which gives about 200,000 connections, caught up by the projections the
job reads. Then, per repetition:

- **full**: the job as after a start or a rebuild (no memory of a last ranking), with the
  connections and the boards forced to have moved, so every part runs;
- **incremental**: APPEND events (recognitions and mentions between random members, dated
  on the ledger's last day, as a live ledger's new events are dated today), caught up,
  then the job of the same applier, which remembers the last ranking.

Each line also says how much of it was betweenness and how much the past end days.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from bench.catchup import filled
from bench.core import Bench, Ratio, Result
from domain import events as e
from domain.scores import CONNECTOR_V1
from services import bootstrap
from services.database import with_database
from services.projector.appliers import scores as appliers
from services.projector.runner import Runner
from services.store.feed import readable_head
from services.store.ledger import Ledger

EVENTS = 390_000
"""About 200,000 connections among 20,000 members (350,000 gave 179,897)."""
APPEND = 200
TARGET_SECONDS = 10.0
READS = ("member_profiles", "connections", "introductions", CONNECTOR_V1.projection)


async def _append(url: str, seed: int) -> None:
    from bench.synthetic import _new  # one shape for every synthetic event

    rng = random.Random(seed)
    async with (
        bootstrap.keyring(url) as keyring,
        AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool,
    ):
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT member_id FROM read.member_profiles ORDER BY 1")
            members = [row[0] for row in await cur.fetchall()]
        last = datetime(2025, 12, 31, 12, tzinfo=UTC)
        pending = []
        for i in range(APPEND):
            a, b = rng.sample(members, 2)
            event: e.Event = (
                e.RecognitionGiven(
                    recognition_id=uuid.UUID(int=rng.getrandbits(128)),
                    from_id=a,
                    to_id=b,
                    kind=e.RECOGNITION_KINDS[0],
                )
                if i % 2
                else e.MentionRecorded(
                    mention_id=uuid.UUID(int=rng.getrandbits(128)), member_id=a, mentioned_id=b
                )
            )
            pending.append(_new(rng, event, last))
        await Ledger(pool, keyring).append(pending)


async def _catch_up(url: str) -> None:
    runner = Runner(url, READS)
    for applier in runner.appliers:
        if isinstance(applier, appliers.ScoreApplier):
            applier.graph_seconds = float("inf")  # the job is timed below, not in the catch-up
    if failures := await runner.run():
        raise RuntimeError(f"catch-up failed: {failures}")


async def _job(url: str, job: appliers.ScoreApplier, forced: bool) -> tuple[float, float, float]:
    """(whole, betweenness, past end days) seconds of one `when_idle`."""
    past = 0.0
    write_past = appliers.write_past_boards

    async def timed(*args: Any, **kwargs: Any) -> None:
        nonlocal past
        started = time.perf_counter()
        await write_past(*args, **kwargs)
        past += time.perf_counter() - started

    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT schema_name FROM projection_builds WHERE name = %s AND state = 'live'",
            [job.name],
        )
        schema = (await cur.fetchone() or ("read",))[0]
        if forced:  # as after the connections and the counts moved
            for kind in ("graph_runs", "boards"):
                await conn.execute(
                    sql.SQL("DELETE FROM {}").format(
                        sql.Identifier(schema, job.formula.table(kind))
                    )
                )
        job._graph_at = 0.0
        appliers.write_past_boards = timed
        try:
            started = time.perf_counter()
            ran = await job.when_idle(conn, schema)
            whole = time.perf_counter() - started
        finally:
            appliers.write_past_boards = write_past
        assert ran, "the job had nothing to do"
        cur = await conn.execute(
            sql.SQL("SELECT seconds FROM {}").format(
                sql.Identifier(schema, job.formula.table("graph_runs"))
            )
        )
        betweenness = (await cur.fetchone() or (0.0,))[0]
    return whole, betweenness, past


@contextmanager
def _ledger(bench: Bench, events: int, template: str | None) -> Iterator[str]:
    """A fresh ledger of `events`, or a copy of the database `template` (a ledger filled
    before, e.g. by an earlier run's `filled`), dropped afterwards."""
    if template is None:
        with filled(bench, events) as name:
            yield name
        return
    name = f"bench_graph_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(bench.server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        yield name
    finally:
        with psycopg.connect(bench.server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def run(bench: Bench, template: str | None = None) -> list[Result | Ratio]:
    events = bench.size(EVENTS)
    samples: dict[str, list[float]] = {}
    with _ledger(bench, events, template) as name:
        url = with_database(bench.server_url, name)
        started = time.perf_counter()
        asyncio.run(_catch_up(url))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            members, connections = conn.execute(
                "SELECT (SELECT count(*) FROM read.member_profiles), "
                "(SELECT count(*) FROM read.connections)"
            ).fetchone() or (0, 0)
        if template is not None:
            events = asyncio.run(_head(url))
        bench.log(
            f"{events:,} events caught up in {time.perf_counter() - started:.0f} s: "
            f"{members:,} members, {connections:,} connections"
        )
        size = f"{members:,} members / {connections:,} connections"
        for repetition in range(bench.repetitions):
            job = appliers.score_applier(CONNECTOR_V1)()
            for kind, forced in (("full", True), ("incremental", False)):
                if not forced:
                    asyncio.run(_append(url, repetition))
                    asyncio.run(_catch_up(url))
                whole, betweenness, past = asyncio.run(_job(url, job, forced))
                for part, value in (
                    (f"whole job, {kind}", whole),
                    (f"of which betweenness, {kind}", betweenness),
                    (f"of which past end days, {kind}", past),
                ):
                    samples.setdefault(part, []).append(value)
                bench.log(
                    f"repetition {repetition + 1}, {kind}: whole job {whole:.2f} s "
                    f"(betweenness {betweenness:.2f} s, past end days {past:.2f} s, "
                    f"the rest {whole - betweenness - past:.2f} s)"
                )
    results = {
        part: Result(
            workload="graph",
            variant=f"{part}, {size}" + (f", after {APPEND} events" if "incr" in part else ""),
            unit="s",
            samples=values,
            higher_is_better=False,
        )
        for part, values in samples.items()
    }
    full, incremental = results["whole job, full"], results["whole job, incremental"]
    return [
        *results.values(),
        Ratio(
            "graph: the whole job, full, seconds", full, None, target=TARGET_SECONDS, at_most=True
        ),
        Ratio(
            "graph: the whole job, incremental, seconds",
            incremental,
            None,
            target=TARGET_SECONDS,
            at_most=True,
        ),
    ]


def main() -> None:
    """This part alone, without the libraries' comparison of `python -m bench graph`."""
    import argparse

    from bench.core import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--ledger", help="copy this database (a filled ledger) instead of filling")
    args = parser.parse_args()
    bench = Bench.standalone(args.repetitions, args.quick)
    for item in run(bench, args.ledger):
        if isinstance(item, Result):
            print(f"{item.variant}: median {item.median:.2f} s, samples {item.samples}")
    print(f"machine: {machine()}")


async def _head(url: str) -> int:
    """The ledger's length: appended one batch after another, its positions run 1..head."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await readable_head(conn)


if __name__ == "__main__":
    main()
