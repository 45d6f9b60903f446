"""The /metrics exposition: the processes' counters (summed over workers) and the
projections' gauges, read from the database at scrape time.

The projections run in another process (or in one of the workers), so their lag and stall
are taken from the database, where every API process sees the same numbers, rather than
from any process's memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, start_http_server
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from psycopg import AsyncConnection

from services.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS
from services.projector.status import projection_statuses, stalled_seconds

log = logging.getLogger("community_ledger.api")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class CatchUpRate:
    """Events per second each projection's checkpoint moved between two scrapes.

    Kept per process: the checkpoint is in the database, so whichever worker answers
    measures the same thing over its own interval. A process's first scrape has no rate.
    """

    MIN_INTERVAL = 1.0
    """Seconds between the two samples of a rate; closer scrapes reuse the last one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sampled: dict[str, tuple[float, int]] = {}
        self._rates: dict[str, float] = {}

    def update(self, checkpoints: dict[str, int]) -> dict[str, float]:
        now = self._clock()
        for name, checkpoint in checkpoints.items():
            sampled = self._sampled.get(name)
            if sampled is None:
                self._sampled[name] = (now, checkpoint)
            elif now - sampled[0] >= self.MIN_INTERVAL:
                # A rebuild that swaps in can move the checkpoint back: no negative rates.
                self._rates[name] = max(0.0, (checkpoint - sampled[1]) / (now - sampled[0]))
                self._sampled[name] = (now, checkpoint)
        return {name: rate for name, rate in self._rates.items() if name in checkpoints}


class _Families:
    """A collector that answers metric families already gathered."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


async def projection_families(conn: AsyncConnection[Any], rates: CatchUpRate) -> list[Metric]:
    """Lag, stall and catch-up rate per projection, as /v1/projections counts them."""
    statuses = await projection_statuses(conn)
    stalled = await stalled_seconds(conn)
    lag = GaugeMetricFamily(
        "ledger_projection_lag_events",
        "Events the live projection has still to apply.",
        labels=["projection"],
    )
    stall = GaugeMetricFamily(
        "ledger_projection_stalled_seconds",
        "Seconds the live checkpoint has not moved while events wait for it (0 when none wait).",
        labels=["projection"],
    )
    rate = GaugeMetricFamily(
        "ledger_projection_catchup_events_per_second",
        "Events per second the live checkpoint moved since this process's previous scrape.",
        labels=["projection"],
    )
    for s in statuses:
        lag.add_metric([s.name], s.lag_events)
        stall.add_metric([s.name], stalled.get(s.name, 0.0) if s.lag_events > 0 else 0.0)
    for name, value in rates.update({s.name: s.checkpoint for s in statuses}).items():
        rate.add_metric([name], value)
    return [lag, stall, rate]


def render(projections: list[Metric]) -> bytes:
    """The text exposition; blocking (it reads the workers' files), so run it off the loop."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([*_process_families(), *projections]))
    return generate_latest(registry)


def _process_families() -> Iterable[Metric]:
    if os.environ.get(MULTIPROCESS_ENV):
        collected: Iterable[Metric] = MultiProcessCollector(None).collect()  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY.collect()


class SeparateScrape:
    """The same families as the API's /metrics, for a server of their own
    (LEDGER_METRICS_PORT): prometheus-client serves them from its thread, where each scrape
    reads the projections on a connection of its own."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.rates = CatchUpRate()

    def collect(self) -> Iterator[Metric]:
        try:
            projections = asyncio.run(self._projections())
        except psycopg.Error as error:
            log.warning("metrics: could not read the projections (%s)", type(error).__name__)
            projections = []
        yield from _process_families()
        yield from projections

    async def _projections(self) -> list[Metric]:
        async with await AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
            return await projection_families(conn, self.rates)


def start_separate_server(conninfo: str, address: str, port: int) -> Callable[[], None]:
    """Serve /metrics on `address:port` from a thread; answer the function that stops it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SeparateScrape(conninfo))
    server, thread = start_http_server(port, addr=address, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Time every HTTP request by its route template (bounded labels, no ids)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            route = scope.get("path_template") or "unmatched"
            method = str(scope.get("method", "GET"))
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)

    return middleware
