"""Workload 5: the API as users start it, at 64 keep-alive connections on loopback.

`community-ledger serve` runs as a child process against a fresh migrated database
(DATABASE_URL), with `--no-projector` as in compose.yaml (projections run in their own
process in a deployment). A write-scope key comes from `community-ledger keys create`
(write includes read), 300 members are registered through the API and given 60
contributions each through the store (so every history page is full). Then,
in each repetition and in this order, each for a bounded duration after a warm-up:
`GET /health` (the framework's own ceiling), single-event `POST /v1/contributions`
(distinct bodies, no Idempotency-Key) and `GET /v1/members/{id}/history` (the first
page, 50 events, cycling over the members).

Then the read models, on one ledger built once: `bench.size(1_000_000)` synthetic events
over 20,000 members (a year of 2025, as `bench catchup` builds it), caught up in place by
every projection (`community_health` first, its time logged, then the others and the
score's graph job), then timed twice on that same database: each endpoint of
`read_model_requests` alone at READ_CONNECTIONS connections (2 workers, cycling over 300
members), and each endpoint of LARGE_LEDGER_READS at one keep-alive connection, sequential
calls, so that p99 is the endpoint's own latency, not a queue's. Windows end where the
synthetic ledger does (`until`), except the leaderboards "ending today", which the graph
job ranks ahead. `python -m bench.http reads [--quick]` runs only this.

The load comes from `bench.loadgen` in its own process. This machine has 2 cores and
the server, its PostgreSQL and the load generator share them: every figure here is a
loopback figure, client included. Every answer must be 2xx, or the workload fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from bench.catchup import filled
from bench.core import Bench, Ratio, Result
from bench.loadgen import Load, Outcome, measure, request
from bench.synthetic import START
from domain import events as e
from domain.codec import encode_payload
from domain.events import stream_of, tags_of, type_name
from services import bootstrap
from services.database import with_database
from services.projector.runner import Runner
from services.queries.health import GROUPS
from services.store.ledger import Ledger
from services.store.records import NewEvent

CONNECTIONS = 64
WORKERS = (2, 1)
"""The first is the headline: compose.yaml (the documented deployment) runs 2 workers."""
LOADGEN_PROCESSES = 1
MEMBERS = 300
HISTORY = 60
"""Contributions each member has before measuring: history pages are full (50 events)."""
READ_CONNECTIONS = 4
READ_UNTIL = "2026-01-01"
"""The day after the synthetic ledger's year (bench.synthetic.START + 365 days)."""
READ_P99_MS = 50.0
"""Issue #15: every read-model endpoint answers in p99 under 50 ms on the 1M ledger."""
KINDS = ("chat_answer", "article", "recap", "mentoring", "answer", "review")


LARGE_LEDGER_READS: dict[str, list[str]] = {
    "GET /health (the floor)": ["/health"],
    "GET /v1/stats/contributions?period=month (a peer)": [
        "/v1/stats/contributions?period=month&since=2025-01-01&until=2026-01-01"
    ],
    "GET /v1/stats/activity?period=day": [
        f"/v1/stats/activity?period=day&since=2025-01-01&until=2026-01-01{space}"
        for space in ("", "&space=forum")
    ],
    "GET /v1/stats/activity?period=week": [
        f"/v1/stats/activity?period=week&since=2025-01-01&until=2026-01-01{space}"
        for space in ("", "&space=forum")
    ],
    "GET /v1/stats/cohorts?period=month": [
        f"/v1/stats/cohorts?period=month&since=2025-01-01&until=2026-01-01{space}"
        for space in ("", "&space=kaizenblog")
    ],
    "GET /v1/stats/cohorts?period=week": [
        f"/v1/stats/cohorts?period=week&since=2025-01-01&until=2026-01-01{space}"
        for space in ("", "&space=kaizenblog")
    ],
    "GET /v1/stats/cohorts/members": [
        f"/v1/stats/cohorts/members?period_start=2025-{month:02}-01&group={group}"
        for month in range(1, 13)
        for group in GROUPS
    ],
}
"""Requests per read endpoint on the large ledger: the issue's target is p99 < 50 ms."""
READ_CALLS = 1_000
UNLIMITED = {"LEDGER_RATE_LIMIT_PER_KEY": "off", "LEDGER_RATE_LIMIT_PER_ADDRESS": "off"}


def run(bench: Bench) -> list[Result | Ratio]:
    full = bench.scale >= 1
    duration, warmup = (10.0, 2.0) if full else (3.0, 1.0)
    results: list[Result] = []
    figures: dict[int, dict[str, Result]] = {}
    for workers in WORKERS:
        figures[workers] = _measure_server(bench, workers, duration, warmup)
        results += figures[workers].values()
    loaded, sequential = measure_large_ledger(bench, duration, warmup)
    results += loaded
    main = figures[WORKERS[0]]
    where = f"{WORKERS[0]} workers, {CONNECTIONS} connections"
    return [
        *results,
        *sequential.values(),
        *(
            Ratio(f"http: {variant} p99 ms", result, None, target=READ_P99_MS, at_most=True)
            for variant, result in sequential.items()
            if variant.endswith("p99") and "/health" not in variant and "(a peer)" not in variant
        ),
        Ratio(
            f"http: POST / health requests/s ({where})",
            main["post rate"],
            main["health rate"],
            target=0.3,
        ),
        Ratio(f"http: POST p99 ms ({where})", main["post p99"], None, target=50, at_most=True),
        Ratio(f"http: history p99 ms ({where})", main["history p99"], None),
        *(
            Ratio(f"http: {r.variant}", r, None, target=READ_P99_MS, at_most=True)
            for r in loaded
            if r.unit == "ms"
        ),
    ]


def _measure_server(
    bench: Bench, workers: int, duration: float, warmup: float
) -> dict[str, Result]:
    samples: dict[str, list[float]] = {}
    with bench.database(prefix="bench_http") as url, running_server(url, workers) as port:
        token = create_key(url)
        auth = {"Authorization": f"Bearer {token}"}
        members = _register_members(port, auth, MEMBERS)
        asyncio.run(_give_history(url, members, HISTORY))
        bench.log(f"server with {workers} workers on port {port}; {len(members)} members")
        for repetition in range(bench.repetitions):
            phases = {
                "health": [request("GET", "/health")],
                "post": _contribution_requests(auth, members, repetition, 20_000),
                "history": [
                    request("GET", f"/v1/members/{member}/history", headers=auth)
                    for member in members
                ],
            }
            for phase, requests in phases.items():
                load = Load(
                    requests=requests,
                    connections=CONNECTIONS,
                    duration=duration,
                    warmup=warmup,
                    processes=LOADGEN_PROCESSES,
                )
                outcome = measure("127.0.0.1", port, load)
                _check(outcome, phase, workers)
                bench.log(
                    f"{workers} workers, {phase}: {outcome.rate:,.0f} requests/s, "
                    f"p50 {outcome.percentile(50) * 1000:.1f} ms, "
                    f"p99 {outcome.percentile(99) * 1000:.1f} ms, "
                    f"{outcome.answers:,} answers, {outcome.non_2xx} non-2xx"
                )
                samples.setdefault(f"{phase} rate", []).append(outcome.rate)
                samples.setdefault(f"{phase} p50", []).append(outcome.percentile(50) * 1000)
                samples.setdefault(f"{phase} p99", []).append(outcome.percentile(99) * 1000)
    names = {
        "health": "GET /health",
        "post": "POST /v1/contributions",
        "history": "GET /v1/members/{id}/history",
    }
    figures = {}
    for key, values in samples.items():
        phase, figure = key.split(" ")
        rate = figure == "rate"
        figures[key] = Result(
            workload="http",
            variant=f"{names[phase]} {'' if rate else figure + ' '}({workers} workers)",
            unit="requests/s" if rate else "ms",
            samples=values,
            higher_is_better=rate,
            note=f"{CONNECTIONS} connections, {duration:g} s after {warmup:g} s warm-up",
        )
    return figures


def contribution_event(member: uuid.UUID, n: int) -> NewEvent:
    """A contribution by `member`, ready for `Ledger.append` (filling is not what is timed)."""
    return new_event(
        e.ContributionRecorded(
            contribution_id=uuid.uuid4(),
            member_id=member,
            kind="chat_answer",
            space="kaizenblog",
            title=f"answer {n}",
        ),
        n,
    )


def new_event(event: e.Event, minutes: int) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        type=type_name(event),
        data=msgspec.Raw(encode_payload(event)),
        stream=stream_of(event),
        tags=tags_of(event),
        occurred_at=START + timedelta(minutes=minutes),
    )


def _check(outcome: Outcome, phase: str, workers: int) -> None:
    if outcome.non_2xx or outcome.errors or not outcome.answers:
        raise RuntimeError(
            f"http {phase} with {workers} workers: {outcome.answers} answers, "
            f"{outcome.non_2xx} not 2xx (statuses {dict(outcome.statuses)}), "
            f"{len(outcome.errors)} connection errors {outcome.errors[:3]}"
        )


def _contribution_requests(
    auth: dict[str, str], members: list[str], repetition: int, count: int
) -> list[bytes]:
    headers = {**auth, "Content-Type": "application/json"}
    return [
        request(
            "POST",
            "/v1/contributions",
            headers=headers,
            body=json.dumps(
                {
                    "member": members[n % len(members)],
                    "kind": KINDS[n % len(KINDS)],
                    "space": "bench",
                    "title": f"contribution {repetition}-{n}",
                }
            ).encode(),
        )
        for n in range(count)
    ]


def _command() -> list[str]:
    script = Path(sys.executable).with_name("community-ledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "services.cli"]


def create_key(url: str) -> str:
    done = subprocess.run(
        [*_command(), "keys", "create", "--name", "bench", "--scope", "write"],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"`keys create` failed ({done.returncode}): {done.stderr.strip()}")
    # Only the token goes to stdout (services/keys_cli.py).
    return done.stdout.strip()


def _register_members(port: int, auth: dict[str, str], count: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for index, member in enumerate(ids):
            body = {"id": member, "display_name": f"Bench {index}", "handles": [f"bench:m{index}"]}
            conn.request(
                "POST",
                "/v1/members",
                body=json.dumps(body),
                headers={**auth, "Content-Type": "application/json"},
            )
            answer = conn.getresponse()
            text = answer.read()
            if answer.status != 201:
                raise RuntimeError(f"registering a member answered {answer.status}: {text!r}")
    finally:
        conn.close()
    return ids


async def _give_history(url: str, members: list[str], each: int) -> None:
    """`each` contributions per member, appended through the store in one batch per round."""
    async with (
        bootstrap.keyring(url) as keyring,
        AsyncConnectionPool(url, min_size=1, max_size=1, open=False) as pool,
    ):
        ledger = Ledger(pool, keyring)
        for n in range(each):
            await ledger.append([contribution_event(uuid.UUID(m), n) for m in members])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(url: str, workers: int) -> Iterator[int]:
    """`community-ledger serve` on a free port until the block ends."""
    port = _free_port()
    command = [
        *_command(),
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-projector",
        "--log-level",
        "warning",
    ]
    handle, log_name = tempfile.mkstemp(prefix="bench-serve-", suffix=".log")
    with os.fdopen(handle, "wb") as log:
        child = subprocess.Popen(
            command,
            # The workloads time the endpoints, not the per-key limit (1,000 requests/s
            # per process by default), which a fast read at 4 connections passes.
            env={**os.environ, "DATABASE_URL": url, **UNLIMITED},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_healthy(port, child, Path(log_name))
            yield port
        finally:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                # The child leads its own session: its workers go with it.
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    if child.returncode in (0, -signal.SIGTERM):
        os.unlink(log_name)


def _wait_until_healthy(port: int, child: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"`serve` exited with {child.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
        time.sleep(0.2)
    raise RuntimeError(f"`serve` did not answer /health within 60 s:\n{log.read_text()}")


def read_model_requests(
    auth: dict[str, str], members: list[str], introductions: list[str]
) -> dict[str, list[Any]]:
    """Per endpoint, the requests its phase cycles over: add a line for a new read endpoint."""
    return {
        "GET /v1/introductions/{id}": [
            request("GET", f"/v1/introductions/{i}", headers=auth) for i in introductions
        ],
        "GET /v1/members/{id}/introductions": [
            request("GET", f"/v1/members/{m}/introductions", headers=auth) for m in members
        ],
        "GET /v1/members/{id}/introductions (introduced)": [
            request("GET", f"/v1/members/{m}/introductions?role=introduced", headers=auth)
            for m in members
        ],
        "GET /v1/members/{id} (introduction outcomes)": [
            request("GET", f"/v1/members/{m}", headers=auth) for m in members
        ],
        "GET /v1/members/{id}/scores": [
            request("GET", f"/v1/members/{m}/scores", headers=auth) for m in members
        ],
        "GET /v1/scores/connector/leaderboard (all)": [
            request("GET", "/v1/scores/connector/leaderboard", headers=auth)
        ],
        **{
            f"GET /v1/scores/connector/leaderboard ({window}, ending today: ranked ahead)": [
                request("GET", f"/v1/scores/connector/leaderboard?window={window}", headers=auth)
            ]
            for window in ("30d", "365d")
        },
        **{
            f"GET /v1/scores/connector/leaderboard ({window} until the ledger's end)": [
                request(
                    "GET",
                    f"/v1/scores/connector/leaderboard?window={window}&until={READ_UNTIL}",
                    headers=auth,
                )
            ]
            for window in ("30d", "365d")
        },
        **{
            f"GET /v1/members/{{id}}/scores/connector/components/{component}/events": [
                request(
                    "GET",
                    f"/v1/members/{m}/scores/connector/components/{component}/events",
                    headers=auth,
                )
                for m in members
            ]
            for component in ("reach", "recognitions_given", "pairs_took", "brokerage")
        },
    }


def measure_large_ledger(
    bench: Bench, duration: float, warmup: float
) -> tuple[list[Result], dict[str, Result]]:
    """The read models on one large ledger, built and caught up once: each endpoint under
    load at READ_CONNECTIONS connections, then each one alone at one connection."""
    events = bench.size(1_000_000)
    with filled(bench, events) as name:
        url = with_database(bench.server_url, name)
        _catch_up(bench, url, events)
        token = create_key(url)
        auth = {"Authorization": f"Bearer {token}"}
        members = _some_members(url, MEMBERS)
        introductions = _some_introductions(url, MEMBERS)
        loaded = _measure_loaded(
            bench, url, read_model_requests(auth, members, introductions), duration, warmup
        )
        sequential = _measure_sequential(bench, url, auth, members)
    where = f"{events:,} events, {WORKERS[0]} workers, {READ_CONNECTIONS} connections"
    note = f"{events:,} events, 1 worker, 1 connection, sequential calls"
    return [
        Result(
            workload="http",
            variant=f"{key.split('|')[0]} {'p99' if key.endswith('p99') else ''}",
            unit="ms" if key.endswith("p99") else "requests/s",
            samples=values,
            higher_is_better=key.endswith("rate"),
            note=where,
        )
        for key, values in loaded.items()
    ], {
        key: Result(
            workload="http",
            variant=key,
            unit="ms",
            samples=values,
            higher_is_better=False,
            note=note,
        )
        for key, values in sequential.items()
    }


def _catch_up(bench: Bench, url: str, events: int) -> None:
    """Every projection, as `projections run` does, graph job included; community_health's
    catch-up logged on its own."""
    import psycopg

    for projections in (["community_health"], []):
        started = time.perf_counter()
        failures = asyncio.run(Runner(url, projections).run())
        if failures:
            raise RuntimeError(f"catch-up failed: {failures}")
        which = ", ".join(projections) or "the other projections (graph job included)"
        bench.log(f"{which}: {events:,} events caught up in {time.perf_counter() - started:.0f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def _measure_loaded(
    bench: Bench, url: str, phases: dict[str, list[Any]], duration: float, warmup: float
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    with running_server(url, WORKERS[0]) as port:
        for _ in range(bench.repetitions):
            for phase, requests in phases.items():
                load = Load(
                    requests=requests,
                    connections=READ_CONNECTIONS,
                    duration=duration,
                    warmup=warmup,
                    processes=LOADGEN_PROCESSES,
                )
                outcome = measure("127.0.0.1", port, load)
                if not outcome.answers:
                    # Its process started after the window closed (a busy machine's spawn):
                    # nothing was measured, so measure again rather than fail.
                    bench.log(f"{phase}: no answer within the window; measured again")
                    outcome = measure("127.0.0.1", port, load)
                _check(outcome, phase, WORKERS[0])
                bench.log(
                    f"{phase}: {outcome.rate:,.0f} requests/s, "
                    f"p50 {outcome.percentile(50) * 1000:.1f} ms, "
                    f"p99 {outcome.percentile(99) * 1000:.1f} ms"
                )
                samples.setdefault(f"{phase}|p99", []).append(outcome.percentile(99) * 1000)
                samples.setdefault(f"{phase}|rate", []).append(outcome.rate)
    return samples


def _measure_sequential(
    bench: Bench, url: str, auth: dict[str, str], members: list[str]
) -> dict[str, list[float]]:
    """Each endpoint of LARGE_LEDGER_READS and of the #15 reads alone, one connection."""
    calls = bench.size(READ_CALLS, smallest=200)
    endpoints = {
        name: [request("GET", path, headers=auth) for path in paths]
        for name, paths in LARGE_LEDGER_READS.items()
    }
    endpoints.update(read_model_requests(auth, members, _some_introductions(url, MEMBERS)))
    samples: dict[str, list[float]] = {}
    with running_server(url, 1) as port:
        for _ in range(bench.repetitions):
            for endpoint, requests in endpoints.items():
                load = Load(
                    requests=requests,
                    connections=1,
                    duration=120.0,
                    warmup=0.5,
                    max_requests=calls,
                )
                outcome = measure("127.0.0.1", port, load)
                _check(outcome, endpoint, 1)
                for figure in (50, 99):
                    key = f"{endpoint} p{figure}"
                    samples.setdefault(key, []).append(outcome.percentile(figure) * 1000)
                bench.log(
                    f"{endpoint}: p50 {samples[endpoint + ' p50'][-1]:.1f} ms, "
                    f"p99 {samples[endpoint + ' p99'][-1]:.1f} ms"
                )
    return samples


def _some_members(url: str, count: int) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT member_id FROM read.member_profiles WHERE merged_into IS NULL "
            "ORDER BY member_id LIMIT %s",
            [count],
        ).fetchall()
    return [str(row[0]) for row in rows]


def _some_introductions(url: str, count: int) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT introduction_id FROM read.introductions ORDER BY introduction_id LIMIT %s",
            [count],
        ).fetchall()
    return [str(row[0]) for row in rows]


PAST_ENDS = tuple(f"2025-{month:02d}-{day:02d}" for month in range(1, 13) for day in (1, 15))
"""Leaderboards `until` days all over the synthetic year, and past it."""


def leaderboard_requests(auth: dict[str, str]) -> dict[str, list[Any]]:
    """The leaderboards with `until`: at the ledger's end, and cycling over its year."""
    base = "/v1/scores/connector/leaderboard"
    return {
        **{
            f"GET {base} ({window} until the ledger's end)": [
                request("GET", f"{base}?window={window}&until={READ_UNTIL}", headers=auth)
            ]
            for window in ("7d", "30d", "90d", "365d", "all")
        },
        **{
            f"GET {base} ({window} until 24 days of 2025, limit 100)": [
                request("GET", f"{base}?window={window}&until={end}&limit=100", headers=auth)
                for end in PAST_ENDS
            ]
            for window in ("30d", "365d")
        },
    }


def measure_leaderboards(bench: Bench) -> None:
    """Issue #15's leaderboards with `until` on the 1M ledger: the graph job's parts timed
    in rolled-back transactions, each leaderboard alone at one connection, and, on the same
    database, the read-time aggregate that answered them before (`ranking`, timed in SQL)."""
    import psycopg

    from domain.scores import CONNECTOR_V1
    from services.projector.appliers import scores as appliers
    from services.queries import scores as q
    from services.settings import introduction_window

    events = bench.size(1_000_000)
    formula, took_window = CONNECTOR_V1, introduction_window()
    with filled(bench, events) as name:
        url = with_database(bench.server_url, name)
        _catch_up(bench, url, events)

        async def job() -> None:
            async with await psycopg.AsyncConnection.connect(url) as conn:
                as_of = await q.as_of(conn, formula)
                cur = await conn.execute(
                    "SELECT schema_name FROM projection_builds WHERE name = %s AND state = 'live'",
                    [formula.projection],
                )
                schema = (await cur.fetchone() or ("read",))[0]
                cur = await conn.execute("SELECT now()")
                now = (await cur.fetchone() or (None,))[0]
                for _ in range(bench.repetitions):
                    started = time.perf_counter()
                    await appliers.write_boards(
                        conn, formula, schema, "read", as_of, took_window, now
                    )
                    whole = time.perf_counter() - started
                    await conn.rollback()
                    started = time.perf_counter()
                    await appliers.write_past_boards(
                        conn, formula, schema, "read", as_of, took_window
                    )
                    past = time.perf_counter() - started
                    await conn.rollback()
                    bench.log(
                        f"graph job's rankings: {whole:.2f} s in all, of which the past end "
                        f"days {past:.2f} s (the windows ending today: {whole - past:.2f} s)"
                    )
                cur = await conn.execute(
                    f"SELECT count(*), pg_total_relation_size('read.{formula.table('past')}') "
                    f"FROM read.{formula.table('past')}"
                )
                rows, size = await cur.fetchone() or (0, 0)
                bench.log(f"past boards: {rows:,} rows, {size / 2**20:.0f} MiB with the index")

        asyncio.run(job())
        token = create_key(url)
        auth = {"Authorization": f"Bearer {token}"}
        calls = bench.size(READ_CALLS, smallest=200)
        with running_server(url, 1) as port:
            for _ in range(bench.repetitions):
                for endpoint, requests in leaderboard_requests(auth).items():
                    load = Load(
                        requests=requests,
                        connections=1,
                        duration=120.0,
                        warmup=0.5,
                        max_requests=calls,
                    )
                    outcome = measure("127.0.0.1", port, load)
                    _check(outcome, endpoint, 1)
                    bench.log(
                        f"{endpoint}: p50 {outcome.percentile(50) * 1000:.1f} ms, "
                        f"p99 {outcome.percentile(99) * 1000:.1f} ms, {outcome.answers} calls"
                    )
        with psycopg.connect(url) as conn:
            for _ in range(bench.repetitions):
                for span in ("7d", "30d", "90d", "365d", "all"):
                    window = q.score_window(span, READ_UNTIL, datetime.now(UTC))
                    query, params = q.ranking(formula, window)
                    query += sql.SQL(" LIMIT 10")
                    times = []
                    for _ in range(5):
                        started = time.perf_counter()
                        conn.execute(query, {**params, "took_window": took_window}).fetchall()
                        times.append((time.perf_counter() - started) * 1000)
                    times.sort()
                    bench.log(
                        f"read-time aggregate (main's answer) {span} until {READ_UNTIL}: "
                        f"median {times[2]:.0f} ms, max {times[-1]:.0f} ms (5 calls, in SQL)"
                    )


def main() -> None:
    """`python -m bench.http reads [--quick]`: only the read models on the 1M ledger;
    `leaderboards`: only the leaderboards with `until` (`measure_leaderboards`)."""
    import argparse

    from bench.core import machine

    parser = argparse.ArgumentParser(description="read-model endpoints on the 1M ledger")
    parser.add_argument("part", choices=["reads", "leaderboards"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    bench = Bench.standalone(args.repetitions, args.quick)
    full = bench.scale >= 1
    if args.part == "leaderboards":
        measure_leaderboards(bench)
        print(f"machine: {machine()}")
        return
    # A quick run's warm-up also covers the load generator's start on a busy machine.
    duration, warmup = (10.0, 2.0) if full else (3.0, 3.0)
    loaded, sequential = measure_large_ledger(bench, duration, warmup)
    for result in [*loaded, *sequential.values()]:
        print(
            f"{result.variant}: median {result.median:,.1f} {result.unit} "
            f"(min {min(result.samples):,.1f}, max {max(result.samples):,.1f}; {result.note})"
        )
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
