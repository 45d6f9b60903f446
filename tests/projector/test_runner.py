"""Projections as jobs: catch-up, crash safety, one runner at a time, rebuilds, poison events."""

from __future__ import annotations

import asyncio
import datetime
import signal
import threading
import uuid

import msgspec
import psycopg
import pytest
from psycopg import sql

from bench.synthetic import fill
from services.projector import runner
from services.store.ledger import Ledger
from services.store.records import NewEvent
from tests.appliers import APPLIERS
from tests.projector.runner_helpers import cli, dump, start, status, wait_until

pytestmark = [pytest.mark.anyio]

NAMES = [applier.name for applier in APPLIERS]


async def test_run_catches_every_projection_up_and_status_shows_no_lag(
    ledger: Ledger, database_url: str
) -> None:
    head = await fill(ledger, 3_000, members=100)

    ran = cli("projections", "run", database_url=database_url)

    assert ran.returncode == 0, ran.stderr
    for projection in status(database_url):
        assert projection["checkpoint"] == head and projection["lag_events"] == 0, projection
        assert projection["state"] == "caught up"
    tables = dump(database_url)
    assert len(tables["member_profiles"]) == 100
    assert tables["contribution_counts"] and tables["connections"]


@pytest.mark.slow
async def test_a_runner_killed_mid_batch_resumes_without_double_counting(
    ledger: Ledger, database_url: str
) -> None:
    await fill(ledger, 12_000, members=500)
    runner = start("projections", "run", "--batch-size", "100", database_url=database_url)
    wait_until(
        lambda: _furthest(database_url) > 1_000 or runner.poll() is not None,
        60,
        "the runner to make progress",
    )
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    assert 0 < _furthest(database_url) < 12_000, "killed too late to matter"

    resumed = cli("projections", "run", database_url=database_url)
    assert resumed.returncode == 0, resumed.stderr
    after_crash = dump(database_url)
    rebuilt = cli("projections", "rebuild", *NAMES, database_url=database_url)
    assert rebuilt.returncode == 0, rebuilt.stderr

    assert dump(database_url) == after_crash


def _furthest(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT coalesce(max(position), 0) FROM projection_builds").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
async def test_two_runners_share_nothing_and_the_second_takes_over_when_the_first_dies(
    ledger: Ledger, database_url: str
) -> None:
    await fill(ledger, 2_000, members=50)
    first = start("projections", "run", "--follow", database_url=database_url)
    wait_until(lambda: all(p["owner"] for p in status(database_url)), 60, "a first owner")
    second = start("projections", "run", "--follow", database_url=database_url)
    try:
        owners = {p["owner"] for p in status(database_url)}
        assert len(owners) == 1 and owners.pop().endswith(f":{first.pid}")
        await fill(ledger, 2_000, members=50, seed=8)
        head = await ledger.head()
        wait_until(
            lambda: all(p["checkpoint"] == head for p in status(database_url)),
            60,
            "the first runner to catch up",
        )

        first.send_signal(signal.SIGKILL)
        first.wait()
        await fill(ledger, 1_000, members=50, seed=9)
        head = await ledger.head()
        wait_until(
            lambda: all(
                p["checkpoint"] == head and p["owner"] and p["owner"].endswith(f":{second.pid}")
                for p in status(database_url)
            ),
            45,
            "the second to take over",
        )
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    served = dump(database_url)
    rebuilt = cli("projections", "rebuild", *NAMES, database_url=database_url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert dump(database_url) == served, "two runners applied something twice or skipped it"


@pytest.mark.slow
async def test_queries_during_a_rebuild_never_see_an_empty_or_half_built_table(
    ledger: Ledger, database_url: str
) -> None:
    await fill(ledger, 8_000, members=300)
    assert cli("projections", "run", database_url=database_url).returncode == 0
    expected = {table: len(rows) for table, rows in dump(database_url).items()}
    seen: list[dict[str, int]] = []
    stop = threading.Event()

    def query_while_rebuilding() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.is_set():
                counts = {}
                for table in expected:
                    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("read", table))
                    row = conn.execute(query).fetchone()
                    counts[table] = row[0] if row else -1
                seen.append(counts)

    reader = threading.Thread(target=query_while_rebuilding)
    reader.start()
    try:
        rebuilt = cli(
            "projections", "rebuild", *NAMES, "--batch-size", "500", database_url=database_url
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
    finally:
        stop.set()
        reader.join()

    assert len(seen) > 10
    assert all(counts == expected for counts in seen), "a query saw a table mid-rebuild"


async def test_a_poison_event_stops_its_projection_naming_position_and_type(
    ledger: Ledger, database_url: str
) -> None:
    head = await fill(ledger, 200, members=20)
    poison = NewEvent(
        event_id=uuid.uuid4(),
        type="TeleportationRecorded",
        data=msgspec.Raw(b"{}"),
        stream="oddities",
        occurred_at=datetime.datetime.now(datetime.UTC),
    )
    await ledger.append([poison])

    ran = cli("projections", "run", database_url=database_url)
    again = cli("projections", "run", database_url=database_url)

    assert ran.returncode == 1
    assert f"position {head + 1} (TeleportationRecorded" in ran.stderr
    assert again.returncode == 1, "a second run must not skip the poison event"
    for projection in status(database_url):
        reached = projection["rebuild_position"] or projection["checkpoint"]
        assert projection["state"] == "failed" and reached == head
        assert "TeleportationRecorded" in projection["error"]


async def test_bumping_a_version_in_code_rebuilds_on_the_next_run(
    ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.projector.runner import Runner

    await fill(ledger, 500, members=30)
    await Runner(database_url).run()
    before = dump(database_url)
    applier = APPLIERS[0]
    monkeypatch.setattr(type(applier), "version", applier.version + 1, raising=False)
    monkeypatch.setattr(applier, "version", applier.version + 1, raising=False)

    await Runner(database_url).run()

    with psycopg.connect(database_url) as conn:
        live = conn.execute(
            "SELECT version FROM projection_builds WHERE name = %s AND state = 'live'",
            [applier.name],
        ).fetchone()
    assert live == (applier.version,)
    assert dump(database_url) == before


async def test_follow_wakes_on_notify(ledger: Ledger, database_url: str) -> None:
    from services.projector.runner import Runner

    await fill(ledger, 100, members=10)
    runner = Runner(database_url)
    task = asyncio.create_task(runner.run(follow=True))
    try:
        await fill(ledger, 50, members=10, seed=3)
        head = await ledger.head()

        async def caught_up() -> bool:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                cur = await conn.execute(
                    "SELECT min(position) FROM projection_builds WHERE state = 'live'"
                )
                row = await cur.fetchone()
            return bool(row and row[0] == head)

        for _ in range(60):  # 3 s: shorter than the 5 s polling fallback
            if await caught_up():
                break
            await asyncio.sleep(0.05)
        assert await caught_up()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_long_catch_up_leaves_its_tables_analyzed_a_short_one_to_autovacuum(
    ledger: Ledger, database_url: str, projector_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(ledger, 1_000, members=50)

    def last_analyzed() -> dict[str, object]:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT relname, last_analyze FROM pg_stat_user_tables "
                "WHERE relname LIKE 'health%%' AND schemaname <> 'read'"
            ).fetchall()
        return dict(rows)

    monkeypatch.setattr(runner, "ANALYZE_AFTER", 1_001)
    await runner.Runner(projector_url, ("community_health",)).run()
    assert set(last_analyzed().values()) == {None}

    monkeypatch.setattr(runner, "ANALYZE_AFTER", 1_000)
    rebuild = ("community_health",)
    await runner.Runner(projector_url, rebuild, rebuild=rebuild).run()
    analyzed = last_analyzed()
    assert "health_member_periods" in analyzed and None not in analyzed.values()
