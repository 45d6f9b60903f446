"""Empty live builds from `db upgrade` on, and how the projector then takes them over."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bench.synthetic import fill
from services import migrate
from services.projector import builds
from services.projector.fresh import make_live_builds
from services.projector.runner import Runner
from services.store.ledger import Ledger
from tests.appliers import APPLIERS
from tests.projector.runner_helpers import dump

pytestmark = pytest.mark.anyio


def live_builds(url: str) -> dict[str, tuple[int, int, int]]:
    """name -> (build id, version, position) of each live build."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, build_id, version, position FROM projection_builds WHERE state = 'live'"
        ).fetchall()
    return {name: (build_id, version, position) for name, build_id, version, position in rows}


def indexes(url: str, schema: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s", [schema])
        return {name for (name,) in rows}


async def retire(url: str, name: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE projection_builds SET state = 'retired' WHERE name = %s AND state = 'live'",
            [name],
        )


def test_upgrade_gives_every_registered_projection_an_empty_live_build(
    empty_database_url: str,
) -> None:
    migrate.upgrade(empty_database_url)

    live = live_builds(empty_database_url)
    assert {name: (v, p) for name, (_, v, p) in live.items()} == {
        applier.name: (applier.version, 0) for applier in APPLIERS
    }
    assert dump(empty_database_url) == {
        t: [] for a in APPLIERS for t in a.tables if t not in getattr(a, "job_tables", ())
    }

    migrate.upgrade(empty_database_url)

    assert live_builds(empty_database_url) == live, "a second upgrade makes nothing new"


async def test_a_projection_without_a_live_build_gets_one_unless_a_runner_holds_it(
    database_url: str,
) -> None:
    """A projection registered after the last upgrade, say; a runner at work makes its own."""
    held, free = APPLIERS[0].name, APPLIERS[1].name
    await retire(database_url, held)
    await retire(database_url, free)
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await builds.take_lease(conn, held, "a runner") is not None

        assert await make_live_builds(conn) == [free]

        assert held not in live_builds(database_url)
        await builds.release_lease(conn, held, "a runner")
        assert await make_live_builds(conn) == [held]


async def test_the_runner_catches_the_empty_live_build_up_in_place(
    ledger: Ledger, database_url: str, caplog: Any
) -> None:
    caplog.set_level(logging.INFO, logger="community_ledger.projector")
    empty = live_builds(database_url)
    head = await fill(ledger, 400, members=20)

    await Runner(database_url).run()

    caught_up = live_builds(database_url)
    assert caught_up == {name: (b, v, head) for name, (b, v, _) in empty.items()}
    assert "rebuilding" not in caplog.text
    with psycopg.connect(database_url) as conn:
        schemas = dict(
            conn.execute(
                "SELECT name, schema_name FROM projection_builds WHERE state = 'live'"
            ).fetchall()
        )
    # The secondary indexes a rebuild makes before its swap, made once caught up.
    assert "connections_member_b_idx" in indexes(database_url, schemas["connections"])
    assert "contribution_counts_day_idx" in indexes(database_url, schemas["contribution_counts"])

    in_place = dump(database_url)
    await Runner(database_url, rebuild=[a.name for a in APPLIERS]).run()
    assert dump(database_url) == in_place
    assert "rebuilding" in caplog.text
    assert all(live_builds(database_url)[n][0] != b for n, (b, _, _) in empty.items())


async def test_readers_see_empty_tables_not_missing_ones_before_the_first_run(
    database_url: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for applier in APPLIERS:
            for table in applier.tables:
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("read", table))
                cur = await conn.execute(query)
                assert await cur.fetchone() == (0,), table
