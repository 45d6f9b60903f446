"""The introductions read model against PostgreSQL: any batch split builds the rebuild's tables.

The ledgers are those of tests/domain/projections/strategies.py, with some contributions
made replies to earlier ones (retracted or not) and envelope ids on every entry, so every
kind of contact, merges included, crosses batch boundaries.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import AsyncConnection, sql

from domain import events as e
from domain.projections import Entry, introductions
from services.projector.appliers.introductions import IntroductionsApplier
from tests.domain.projections.strategies import valid_ledgers

pytestmark = pytest.mark.anyio


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


@st.composite
def ledgers_with_replies(draw: st.DrawFn) -> list[Entry]:
    entries: list[Entry] = []
    recorded: list[uuid.UUID] = []
    for entry in draw(valid_ledgers(max_steps=60)):
        event = entry.event
        if isinstance(event, e.ContributionRecorded):
            replies = draw(st.booleans())
            if recorded and replies:
                reply_to = draw(st.sampled_from(recorded))
                event = msgspec.structs.replace(event, reply_to=reply_to)
            recorded.append(event.contribution_id)
        event_id = uuid.UUID(int=10**9 + entry.position)
        entries.append(
            Entry(
                position=entry.position,
                occurred_at=entry.occurred_at,
                event=event,
                event_id=event_id,
            )
        )
    return entries


@st.composite
def split_ledgers(draw: st.DrawFn) -> tuple[list[Entry], list[int], list[bool]]:
    entries = draw(ledgers_with_replies())
    sizes = draw(st.lists(st.integers(1, 8), min_size=len(entries), max_size=len(entries)))
    failed = draw(st.lists(st.booleans(), min_size=len(sizes), max_size=len(sizes)))
    return entries, sizes, failed


class RolledBack(Exception):
    pass


async def build(
    conn: AsyncConnection[Any],
    applier: IntroductionsApplier,
    entries: Sequence[Entry],
    sizes: Sequence[int],
    failed: Sequence[bool] = (),
) -> str:
    """A new schema built batch by batch, each batch in a transaction as the runner's; a
    batch marked failed is first tried in a transaction that rolls back after the fold."""
    schema = f"build_{uuid.uuid4().hex[:12]}"
    async with conn.transaction():
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        await applier.create_tables(conn, schema)
        await applier.create_indexes(conn, schema)
    start, after = 0, 0
    for index, size in enumerate(sizes):
        batch = entries[start : start + size]
        start += size
        if not batch:
            continue
        if index < len(failed) and failed[index]:
            with pytest.raises(RolledBack):
                async with conn.transaction():
                    await applier.apply(conn, schema, batch, after=after)
                    raise RolledBack
        async with conn.transaction():
            await applier.apply(conn, schema, batch, after=after)
        after = batch[-1].position
    return schema


async def dump(conn: AsyncConnection[Any], schema: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = {}
    for table in IntroductionsApplier.tables:
        query = sql.SQL("SELECT * FROM {} AS t ORDER BY t::text")
        cur = await conn.execute(query.format(sql.Identifier(schema, table)))
        tables[table] = await cur.fetchall()
    return tables


# Drawing inside an async test would raise hypothesis' StopTest through the event loop:
# each example is drawn whole, up front.
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=split_ledgers())
async def test_any_split_into_batches_even_with_failed_tries_equals_the_rebuild_and_the_fold(
    conn: AsyncConnection[Any], case: tuple[list[Entry], list[int], list[bool]]
) -> None:
    entries, sizes, failed = case
    applier = IntroductionsApplier()  # one memory across both builds, as a runner's
    whole = await build(conn, applier, entries, [len(entries)])
    split = await build(conn, applier, entries, sizes, failed)
    try:
        tables = await dump(conn, whole)
        assert await dump(conn, split) == tables
        # And both are the pure fold's rows: no pair, role or introduction lost in SQL.
        state = introductions.fold(introductions.State(), entries)
        pairs = {(row[0], row[1], row[2]): row for row in tables["introduction_pairs"]}
        assert set(pairs) == set(state.pairs)
        for key, pair in state.pairs.items():
            assert pairs[key][6:] == (
                pair.evidence_kind,
                pair.evidence_id,
                pair.evidence_event_id,
                pair.evidence_position,
                pair.evidence_at,
            )
        assert {(r[0], r[1], r[2]) for r in tables["introduction_roles"]} == set(state.roles)
    finally:
        for schema in (whole, split):
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
