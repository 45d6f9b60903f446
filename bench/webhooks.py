"""Workload 7: webhook deliveries per second, to a receiver answering at once and a slow one.

One dispatcher (`services.webhooks.dispatcher.Dispatcher`, what `community-ledger webhooks
run` runs) delivers the ledger's events to subscriptions on a receiver on loopback
(`bench/webhook_receiver.py`, a process of its own). Each repetition replays every
subscription from position 0 and times `run()` (deliver until caught up, then stop):

- **fast, 1 subscription** (5,000 events) and **fast, 8 subscriptions** (1,000 events
  each): the receiver answers 200 at once; deliveries/s (target at least 500 with one
  dispatcher);
- **slow, 8 subscriptions**: the receiver takes 200 ms per request, so one subscription
  (delivered in order, one at a time) gets at most 5 deliveries/s (40 events each); the
  ratio to that
  ceiling is how many subscriptions proceed at once (target at least 4 of 8).

Also the dispatcher's processor time per delivery (this process's, the receiver and
PostgreSQL apart), and the rate one free core sustains at that cost: on a shared machine
the wall-clock rate says as much about the neighbours as about the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import msgspec
import psycopg

from bench.core import Bench, Ratio, Result
from services import bootstrap
from services.settings import Settings, load_settings
from services.store.feed import readable_head
from services.store.ledger import Ledger
from services.store.records import NewEvent
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.secrets import new_secret, wrap_secret

SLOW_SECONDS = 0.2
SUBSCRIPTIONS = 8


def run(bench: Bench) -> list[Result | Ratio]:
    events = bench.size(5_000, smallest=500)
    shared_events = bench.size(1_000, smallest=200)
    slow_events = bench.size(40, smallest=10)
    samples: dict[str, list[float]] = {}
    settings = msgspec.structs.replace(load_settings(), webhooks_allow_private_targets=True)
    with bench.database(prefix="bench_webhooks") as url:
        asyncio.run(_fill(url, events))
        with _receiver(0.0) as fast, _receiver(SLOW_SECONDS) as slow:
            cases = {
                "fast, 1 subscription": (fast, 1, events),
                f"fast, {SUBSCRIPTIONS} subscriptions": (fast, SUBSCRIPTIONS, shared_events),
                f"slow, {SUBSCRIPTIONS} subscriptions": (slow, SUBSCRIPTIONS, slow_events),
            }
            for name, (receiver, count, up_to) in cases.items():
                hooks = _subscribe(url, receiver, count)
                for _ in range(bench.repetitions):
                    rate, cpu = asyncio.run(_deliver(url, settings, hooks, up_to))
                    samples.setdefault(name, []).append(rate)
                    samples.setdefault(f"{name}: processor", []).append(cpu)
                    bench.log(f"{name}: {rate:,.0f} deliveries/s, {cpu:.2f} ms processor each")
                _unsubscribe(url, hooks)
    results = {
        name: Result(
            workload="webhooks",
            variant=name.replace(": processor", ": processor per delivery"),
            unit="ms" if name.endswith("processor") else "deliveries/s",
            samples=values,
            higher_is_better=not name.endswith("processor"),
            note=f"events per subscription: {events:,} (fast, 1), {shared_events:,} (fast, "
            f"{SUBSCRIPTIONS}), {slow_events} (slow)",
        )
        for name, values in samples.items()
    }
    fast = f"fast, {SUBSCRIPTIONS} subscriptions"
    one_core = Result(
        workload="webhooks",
        variant=f"{fast}: deliveries/s one free core sustains",
        unit="deliveries/s",
        samples=[1000 / value for value in samples[f"{fast}: processor"]],
        note="1000 / the dispatcher's processor ms per delivery: the rate on an idle core",
    )
    ceiling = Result(
        workload="webhooks",
        variant="one subscription's ceiling at 200 ms",
        unit="deliveries/s",
        samples=[1 / SLOW_SECONDS],
        note="in order, one at a time: 1 / 0.2 s",
    )
    slow_name = f"slow, {SUBSCRIPTIONS} subscriptions"
    return [
        *results.values(),
        one_core,
        Ratio(name=f"webhooks: {fast}, on one free core", numerator=one_core, target=500),
        Ratio(
            name="webhooks: fast, 1 subscription",
            numerator=results["fast, 1 subscription"],
            target=500,
        ),
        Ratio(
            name=f"webhooks: fast, {SUBSCRIPTIONS} subscriptions",
            numerator=results[f"fast, {SUBSCRIPTIONS} subscriptions"],
            target=500,
        ),
        Ratio(
            name=f"webhooks: {slow_name} / one subscription's ceiling",
            numerator=results[slow_name],
            denominator=ceiling,
            target=SUBSCRIPTIONS / 2,
            note="how many subscriptions proceed at once",
        ),
    ]


async def _fill(url: str, events: int) -> None:
    async with bootstrap.write_path(url) as wired:
        ledger: Ledger = wired.ledger
        for start in range(0, events, 1_000):
            await ledger.append([_event(i) for i in range(start, min(events, start + 1_000))])


def _event(index: int) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        type="BenchNoted",
        data=msgspec.Raw(msgspec.json.encode({"index": index, "note": "x" * 200})),
        stream=f"bench-{index % 100}",
        tags=(f"space:bench-{index % 10}",),
        occurred_at=datetime.now(UTC),
    )


@contextlib.contextmanager
def _receiver(delay: float) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_receiver", "--delay", str(delay)],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.kill()
        process.wait()


def _subscribe(url: str, receiver: str, count: int) -> list[uuid.UUID]:
    """`count` subscriptions to every event, as the API stores them."""
    master = bootstrap.master_key(load_settings())
    hooks = [uuid.uuid4() for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as conn:
        for hook in hooks:
            wrapped, kek_id = wrap_secret(master, new_secret())
            conn.execute(
                "INSERT INTO webhooks (webhook_id, url, secret_wrapped, kek_id) "
                "VALUES (%s, %s, %s, %s)",
                [hook, f"{receiver}/hooks/{hook}", wrapped, kek_id],
            )
    return hooks


def _unsubscribe(url: str, hooks: list[uuid.UUID]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM webhooks WHERE webhook_id = ANY (%s)", [hooks])


async def _deliver(
    url: str, settings: Settings, hooks: list[uuid.UUID], events: int
) -> tuple[float, float]:
    """Replay every subscription from `events` below the head, and time the dispatcher's
    run: deliveries/s, and this process's processor milliseconds per delivery."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
        head = await readable_head(aconn)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE webhooks SET position = %s, attempts = 0, next_attempt_at = NULL "
            "WHERE webhook_id = ANY (%s)",
            [head - events, hooks],
        )
    async with bootstrap.keyring(url) as keyring:
        dispatcher = Dispatcher(url, keyring, settings)
        started, processor = time.perf_counter(), time.process_time()
        await dispatcher.run()
        elapsed = time.perf_counter() - started
        processor = time.process_time() - processor
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM webhooks WHERE webhook_id = ANY (%s) AND position <> %s",
            [hooks, head],
        ).fetchone()
    if row and row[0]:
        raise RuntimeError(f"{row[0]} subscriptions did not catch up")
    deliveries = events * len(hooks)
    return deliveries / elapsed, processor * 1000 / deliveries
