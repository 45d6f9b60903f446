"""Workload 6: a member's history, first page and a deep page, on a million-event ledger.

The ledger is `bench/synthetic.py`'s mix, with one more member whose 10,000
contributions are interleaved evenly through it (one every ~100 events), so the member's
rows lie scattered over the whole table as a long-lived member's would. Pages are the
API's default 50 events, newest first; the deep page starts at a cursor 90% of the
member's history deep (9,000 events at full size).

Each page is timed over many sequential calls (no concurrency: this is the query's
latency, not a throughput), two ways:
- **store**: `Ledger.read_tagged("member:<id>", before=cursor, limit=50)` on a pool;
- **http**: `GET /v1/members/{id}/history?cursor=…` against `community-ledger serve`
  (one worker), one keep-alive connection from `bench.loadgen`'s own process.

Both on two ledgers of the same events, taking turns (`LEDGERS`): sealed, as production
stores them, and in clear, through the bench-only switch: the ratio of their p99s is what
opening the boxes costs a page (issue 12: at most 1.15).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import psycopg
from psycopg_pool import AsyncConnectionPool

from bench.core import Bench, Ratio, Result
from bench.http import contribution_event, create_key, new_event, running_server
from bench.loadgen import Load, Outcome, measure, request
from bench.synthetic import synthetic_events
from domain import events as e
from domain.streams import member_tag
from services import bootstrap
from services.store.ledger import Ledger
from services.store.records import NewEvent

PAGE = 50
BATCH = 5_000


LEDGERS = {"sealed": True, "in clear": False}
"""The same events appended twice: as production stores them, and with `Ledger`'s
bench-only switch that leaves personal fields unsealed. Their pages are timed in turns:
what opening the boxes costs a history page (issue 12: within 15 %)."""


def run(bench: Bench) -> list[Result | Ratio]:
    total = bench.size(1_000_000)
    own = bench.size(10_000)
    calls = bench.size(2_000, smallest=500)
    member = uuid.uuid4()
    samples: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        served: dict[str, tuple[str, int, str, int]] = {}
        for ledger, sealing in LEDGERS.items():
            url = stack.enter_context(bench.database(prefix="bench_history"))
            token = create_key(url)
            started = time.perf_counter()
            asyncio.run(_fill(url, member, total, own, sealing))
            filled = time.perf_counter() - started
            deep = asyncio.run(_cursor(url, member, int(own * 0.9)))
            # Statistics as a ledger that has lived a while has them (autovacuum's analyze):
            # without them the planner walks all of the member's tags to find a rare type.
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            bench.log(
                f"ledger {ledger} of {total:,} events, {own:,} of them the member's, appended "
                f"in {filled:.0f} s ({total / filled:,.0f} events/s, batches of {BATCH:,}), "
                f"ready in {time.perf_counter() - started:.0f} s; deep cursor {deep:,} "
                f"({int(own * 0.9):,} events deep)"
            )
            served[ledger] = (url, stack.enter_context(running_server(url, 1)), token, deep)
        for repetition in range(bench.repetitions):
            turns = list(served.items())
            if repetition % 2:  # neither ledger always goes first
                turns.reverse()
            for page in ("first", "deep"):
                for ledger, (url, port, token, deep) in turns:
                    cursor = deep if page == "deep" else None
                    latencies = asyncio.run(_store_latencies(url, member, cursor, calls))
                    _add(samples, _key(ledger, "store", page), latencies)
                    latencies = _http_latencies(port, token, member, cursor, calls)
                    _add(samples, _key(ledger, "http", page), latencies)
                    bench.log(
                        f"{page} page, {ledger}: store p50 "
                        f"{samples[_key(ledger, 'store', page, 'p50')][-1]:.2f} ms, p99 "
                        f"{samples[_key(ledger, 'store', page, 'p99')][-1]:.2f} ms; http p50 "
                        f"{samples[_key(ledger, 'http', page, 'p50')][-1]:.2f} ms, p99 "
                        f"{samples[_key(ledger, 'http', page, 'p99')][-1]:.2f} ms"
                    )
    note = f"{total:,} events, member with {own:,}, {calls:,} sequential calls of {PAGE}"
    figures = {
        key: Result(
            workload="history",
            variant=_variant(key),
            unit="ms",
            samples=values,
            higher_is_better=False,
            note=note,
        )
        for key, values in samples.items()
    }
    ratios = []
    for way in ("http", "store"):
        first = figures[_key("sealed", way, "first", "p99")]
        deep_p99 = figures[_key("sealed", way, "deep", "p99")]
        ratios += [
            Ratio(f"history ({way}): first page p99 ms", first, None, target=20, at_most=True),
            Ratio(
                f"history ({way}): deep / first page p99", deep_p99, first, target=1.5, at_most=True
            ),
        ]
        for page in ("first", "deep"):
            ratios.append(
                Ratio(
                    f"history ({way}): {page} page p99, sealed / in clear",
                    figures[_key("sealed", way, page, "p99")],
                    figures[_key("in clear", way, page, "p99")],
                    target=1.15,
                    at_most=True,
                )
            )
    return [*figures.values(), *ratios]


def _key(ledger: str, way: str, page: str, figure: str = "") -> str:
    return "|".join(part for part in (ledger, way, page, figure) if part)


def _variant(key: str) -> str:
    ledger, way, page, figure = key.split("|")
    where = "Ledger.read_tagged" if way == "store" else "GET /v1/members/{id}/history"
    return f"{where}, {page} page, {figure}" + (f", ledger {ledger}" if ledger != "sealed" else "")


def _add(samples: dict[str, list[float]], key: str, latencies: list[float]) -> None:
    timed = Outcome(elapsed=1.0, latencies=latencies)
    samples.setdefault(f"{key}|p50", []).append(timed.percentile(50) * 1000)
    samples.setdefault(f"{key}|p99", []).append(timed.percentile(99) * 1000)


async def _fill(url: str, member: uuid.UUID, total: int, own: int, sealing: bool) -> None:
    """`total` events, `own` of them `member`'s contributions spread evenly; `sealing`:
    `Ledger`'s switch (False: personal fields stored in clear, for the bench only)."""
    async with (
        bootstrap.keyring(url) as keyring,
        AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool,
    ):
        ledger = Ledger(pool, keyring, sealing=sealing)
        pending: list[NewEvent] = []
        for event in _interleaved(member, total, own):
            pending.append(event)
            if len(pending) == BATCH:
                await ledger.append(pending)
                pending = []
        if pending:
            await ledger.append(pending)


def _interleaved(member: uuid.UUID, total: int, own: int) -> Iterator[NewEvent]:
    yield new_event(e.MemberRegistered(member_id=member, display_name="The Regular"), 0)
    every = max(1, (total - own - 1) // own)
    written = 0
    for index, event in enumerate(synthetic_events(total - own - 1)):
        yield event
        if index % every == every - 1 and written < own:
            written += 1
            yield contribution_event(member, written)
    for n in range(written + 1, own + 1):
        yield contribution_event(member, n)


async def _cursor(url: str, member: uuid.UUID, depth: int) -> int:
    """The position to pass as `cursor` to start `depth` events into the member's history."""
    async with (
        bootstrap.keyring(url) as keyring,
        AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool,
    ):
        newest = await Ledger(pool, keyring).read_tagged(member_tag(member), limit=depth)
    assert len(newest) == depth, f"the member has fewer than {depth} events"
    return newest[-1].position


async def _store_latencies(
    url: str, member: uuid.UUID, cursor: int | None, calls: int
) -> list[float]:
    async with (
        bootstrap.keyring(url) as keyring,
        AsyncConnectionPool(
            url, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False
        ) as pool,
    ):
        ledger = Ledger(pool, keyring)
        tag = member_tag(member)
        for _ in range(20):
            await ledger.read_tagged(tag, before=cursor, limit=PAGE)
        latencies = []
        for _ in range(calls):
            started = time.perf_counter()
            page = await ledger.read_tagged(tag, before=cursor, limit=PAGE)
            latencies.append(time.perf_counter() - started)
            assert len(page) == PAGE
    return latencies


def _http_latencies(
    port: int, token: str, member: uuid.UUID, cursor: int | None, calls: int
) -> list[float]:
    path = f"/v1/members/{member}/history" + (f"?cursor={cursor}" if cursor else "")
    load = Load(
        requests=[request("GET", path, headers={"Authorization": f"Bearer {token}"})],
        connections=1,
        duration=120.0,
        warmup=0.5,
        max_requests=calls,
    )
    outcome = measure("127.0.0.1", port, load)
    if outcome.non_2xx or outcome.errors or outcome.answers < calls:
        raise RuntimeError(
            f"history over http: {outcome.answers} answers of {calls}, statuses "
            f"{dict(outcome.statuses)}, errors {outcome.errors[:3]}"
        )
    return outcome.latencies
