"""The appliers against PostgreSQL: real rows for a real story, and batch-split independence."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import AsyncConnection, sql

from domain import events as e
from domain.projections import Entry
from services.projector.appliers.connections import PAIR_COLUMNS, PairRow
from tests.appliers import APPLIERS
from tests.domain.projections.strategies import valid_ledgers
from tests.domain.projections.timeline import (
    ANA,
    BO,
    CY,
    DEE,
    START,
    contributed,
    forgotten,
    introduced,
    ledger,
    mentioned,
    merged,
    recognised,
    registered,
    retracted,
    withdrawn,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


async def new_build(conn: AsyncConnection[Any]) -> str:
    """A fresh schema with every read model's tables, as the runner makes one."""
    schema = f"build_{uuid.uuid4().hex[:12]}"
    async with conn.transaction():
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for applier in APPLIERS:
            await applier.create_tables(conn, schema)
    return schema


class RolledBack(Exception):
    pass


async def apply_in_batches(
    conn: AsyncConnection[Any],
    schema: str,
    entries: Sequence[Entry],
    sizes: Sequence[int],
    rolled_back: Sequence[bool] = (),
) -> None:
    """Each batch in a transaction of its own, like the runner's (which adds its checkpoint).

    A batch marked in `rolled_back` is first applied in a transaction that fails after the
    folds (as when the commit is lost), then again: what the appliers remembered of the
    failed try must not count.
    """
    start, after = 0, 0
    for index, size in enumerate(sizes):
        batch = entries[start : start + size]
        start += size
        if not batch:
            continue
        if index < len(rolled_back) and rolled_back[index]:
            with pytest.raises(RolledBack):
                async with conn.transaction():
                    for applier in APPLIERS:
                        await applier.apply(conn, schema, batch, after=after)
                    raise RolledBack
        async with conn.transaction():
            for applier in APPLIERS:
                await applier.apply(conn, schema, batch, after=after)
        after = batch[-1].position
    assert start >= len(entries)


async def dump(conn: AsyncConnection[Any], schema: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = {}
    for applier in APPLIERS:
        for table in applier.tables:
            query = sql.SQL("SELECT * FROM {} AS t ORDER BY t::text")
            cur = await conn.execute(query.format(sql.Identifier(schema, table)))
            tables[table] = await cur.fetchall()
    return tables


async def read_from(conn: AsyncConnection[Any], schema: str) -> None:
    await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))


async def rows(conn: AsyncConnection[Any], query: str, *params: Any) -> list[dict[str, Any]]:
    cur = await conn.execute(query, params)
    names = [column.name for column in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def test_create_tables_makes_exactly_the_tables_each_applier_declares(
    conn: AsyncConnection[Any],
) -> None:
    schema = await new_build(conn)
    found = await rows(
        conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", schema
    )
    declared = [table for applier in APPLIERS for table in applier.tables]
    assert sorted(row["table_name"] for row in found) == sorted(declared)
    assert len(set(declared)) == len(declared), "the read schema holds them side by side"
    assert [a.name for a in APPLIERS] == [
        "member_profiles",
        "contribution_counts",
        "connections",
        "interaction_counts",
        "introductions",
        "score_connector_v1",
        "community_health",
    ]


def test_pairs_are_read_back_into_every_column_in_table_order() -> None:
    assert PairRow.__struct_fields__ == tuple(name for name, _ in PAIR_COLUMNS)


DAY_1, DAY_2 = START, START + timedelta(days=1)
ARTICLE = contributed(BO, "article", "forum")
CY_THANKS_BO = recognised(CY, BO)

STORY = ledger(
    (DAY_1, registered(ANA, "github:ana", name="Ana")),
    (DAY_1, registered(BO, "twitter:@bo", name="Bo")),
    (DAY_1, registered(CY, name="Cy")),
    (DAY_1, registered(DEE, name="Dee")),
    (DAY_1, contributed(ANA, "chat_answer")),
    (DAY_1 + timedelta(hours=1), contributed(ANA, "chat_answer")),
    (DAY_2, contributed(ANA, "recap")),
    (DAY_1, ARTICLE),
    (DAY_1, introduced(DEE, ANA, BO)),
    (DAY_2, mentioned(BO, CY)),
    (DAY_2, recognised(CY, ANA)),
    (DAY_2, CY_THANKS_BO),
    (DAY_2, withdrawn(CY_THANKS_BO)),
    (DAY_2, merged(BO, into=ANA)),
    (DAY_2, retracted(ARTICLE)),
    (DAY_2, forgotten(CY)),
)


async def test_a_story_of_contributions_merges_and_forgetting_lands_in_the_tables(
    conn: AsyncConnection[Any],
) -> None:
    schema = await new_build(conn)
    await apply_in_batches(conn, schema, STORY, [1] * len(STORY))  # each event alone
    await read_from(conn, schema)

    profiles = {row["member_id"]: row for row in await rows(conn, "SELECT * FROM member_profiles")}
    ana, bo, cy = profiles[ANA], profiles[BO], profiles[CY]
    assert (ana["contributions_total"], ana["contributions_by_kind"]) == (
        3,
        {"chat_answer": 2, "recap": 1},
    )
    assert ana["handles"] == ["github:ana", "twitter:@bo"]
    assert (ana["introductions_received"], ana["mentions_given"]) == (2, 1)
    assert (ana["recognitions_received"], ana["updated_position"]) == (1, 15)
    assert (ana["first_active_at"], ana["last_active_at"]) == (DAY_1, DAY_2)
    assert (bo["merged_into"], bo["contributions_total"], bo["handles"]) == (ANA, 0, [])
    assert (cy["display_name"], cy["forgotten"], cy["recognitions_given"]) == ("", True, 1)

    cur = await conn.execute(
        "SELECT member_id, kind, space, day, count FROM contribution_counts ORDER BY day"
    )
    assert await cur.fetchall() == [
        (ANA, "chat_answer", "kaizenblog", date(2025, 3, 1), 2),
        (ANA, "recap", "kaizenblog", date(2025, 3, 2), 1),
    ]

    cur = await conn.execute(
        "SELECT member_a, member_b, introduced, mentioned, recognised, weight, last_at "
        "FROM connections ORDER BY member_a, member_b"
    )
    assert await cur.fetchall() == [(ANA, CY, 0, 1, 1, 2, DAY_2), (ANA, DEE, 2, 0, 0, 2, DAY_1)]


async def test_forgetting_clears_the_duplicates_merged_in_earlier_batches(
    conn: AsyncConnection[Any],
) -> None:
    schema = await new_build(conn)
    chain = ledger(
        registered(ANA, "github:ana", name="Ana"),
        registered(BO, "twitter:@ana_old", name="Ana (old)"),
        registered(CY, name="Ana (older)"),
        merged(CY, into=BO),
        merged(BO, into=ANA),
        forgotten(ANA),
    )
    await apply_in_batches(conn, schema, chain, [4, 1, 1])
    await read_from(conn, schema)

    cur = await conn.execute(
        "SELECT member_id, display_name, handles, forgotten FROM member_profiles ORDER BY 1"
    )
    assert await cur.fetchall() == [(m, "", [], True) for m in (ANA, BO, CY)]


async def test_who_a_member_is_connected_to_is_an_index_lookup_on_either_side(
    conn: AsyncConnection[Any],
) -> None:
    schema = await new_build(conn)
    await apply_in_batches(conn, schema, STORY, [len(STORY)])
    for applier in APPLIERS:  # as the runner does once a build has caught up
        await applier.create_indexes(conn, schema)
    await read_from(conn, schema)
    await conn.execute("SET enable_seqscan = off")
    cur = await conn.execute(
        "EXPLAIN SELECT * FROM connections WHERE member_a = %(m)s OR member_b = %(m)s",
        {"m": CY},
    )
    plan = "\n".join(row[0] for row in await cur.fetchall())
    assert "Seq Scan" not in plan, plan


@st.composite
def split_ledgers(draw: st.DrawFn) -> tuple[list[Entry], list[int], list[bool]]:
    """A valid ledger, batch sizes that cover it, and which batches fail once first."""
    entries = draw(valid_ledgers())
    sizes = draw(st.lists(st.integers(1, 8), min_size=len(entries), max_size=len(entries)))
    rolled_back = draw(st.lists(st.booleans(), min_size=len(sizes), max_size=len(sizes)))
    return entries, sizes, rolled_back


# Drawing inside an async test would raise hypothesis' StopTest through the event loop:
# each example is drawn whole, up front.
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=split_ledgers())
async def test_any_split_into_batches_even_with_failed_tries_builds_the_same_tables_as_one(
    conn: AsyncConnection[Any], case: tuple[list[Entry], list[int], list[bool]]
) -> None:
    entries, sizes, rolled_back = case
    whole, split = await new_build(conn), await new_build(conn)
    try:
        await apply_in_batches(conn, whole, entries, [len(entries)])
        await apply_in_batches(conn, split, entries, sizes, rolled_back)

        assert await dump(conn, split) == await dump(conn, whole)
        await _check_totals_agree(conn, whole, entries)
    finally:
        for schema in (whole, split):
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


async def _check_totals_agree(
    conn: AsyncConnection[Any], schema: str, entries: list[Entry]
) -> None:
    """Every contribution still standing is counted once, in both read models, and the
    per-day totals over members are the members' rows summed (none left at zero)."""
    recorded = {
        x.event.contribution_id for x in entries if isinstance(x.event, e.ContributionRecorded)
    }
    taken_back = {
        x.event.contribution_id for x in entries if isinstance(x.event, e.ContributionRetracted)
    }
    cur = await conn.execute(
        sql.SQL(
            "SELECT (SELECT coalesce(sum(count), 0) FROM {}), "
            "(SELECT coalesce(sum(contributions_total), 0) FROM {})"
        ).format(
            sql.Identifier(schema, "contribution_counts"),
            sql.Identifier(schema, "member_profiles"),
        )
    )
    assert await cur.fetchone() == (len(recorded - taken_back),) * 2
    cur = await conn.execute(
        sql.SQL(
            "SELECT kind, space, day, sum(count) FROM {} GROUP BY kind, space, day "
            "ORDER BY kind, space, day"
        ).format(sql.Identifier(schema, "contribution_counts"))
    )
    by_members = await cur.fetchall()
    cur = await conn.execute(
        sql.SQL("SELECT kind, space, day, count FROM {} ORDER BY kind, space, day").format(
            sql.Identifier(schema, "contribution_day_totals")
        )
    )
    assert await cur.fetchall() == by_members, "the day totals are the members' rows summed"


async def test_a_failed_try_leaves_nothing_remembered_that_the_retry_counts_again(
    conn: AsyncConnection[Any],
) -> None:
    whole, split = await new_build(conn), await new_build(conn)
    await apply_in_batches(conn, whole, STORY, [len(STORY)])
    await apply_in_batches(conn, split, STORY, [5, 5, 6], rolled_back=[True, True, True])

    assert await dump(conn, split) == await dump(conn, whole)


async def test_an_applier_reads_again_what_another_runner_wrote_meanwhile(
    conn: AsyncConnection[Any],
) -> None:
    chain = ledger(
        registered(ANA, "github:ana", name="Ana"),
        registered(BO, "twitter:@ana_old", name="Ana (old)"),
        registered(CY, name="Ana (older)"),
        contributed(CY, "article"),
        merged(CY, into=BO),
        merged(BO, into=ANA),
        forgotten(ANA),
    )
    whole, split = await new_build(conn), await new_build(conn)
    await apply_in_batches(conn, whole, chain, [len(chain)])
    ours = [type(applier)() for applier in APPLIERS]
    theirs = [type(applier)() for applier in APPLIERS]
    for appliers, batch, after in (
        (ours, chain[:4], 0),
        (theirs, chain[4:5], chain[3].position),  # another runner took the lease for a batch
        (ours, chain[5:], chain[4].position),
    ):
        async with conn.transaction():
            for applier in appliers:
                await applier.apply(conn, split, batch, after=after)

    assert await dump(conn, split) == await dump(conn, whole)
    cur = await conn.execute(
        sql.SQL("SELECT member_id, contributions_total, forgotten FROM {} ORDER BY 1").format(
            sql.Identifier(split, "member_profiles")
        )
    )
    assert sorted(await cur.fetchall()) == sorted([(ANA, 1, True), (BO, 0, True), (CY, 0, True)])
