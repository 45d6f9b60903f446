"""Score versions against PostgreSQL: any batch split builds what a rebuild builds, v1 and
v2 side by side from one ledger, and every total is the distinct counterparts it claims."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from psycopg import AsyncConnection, sql

from domain import events as e
from domain.projections import Entry
from domain.projections.scores import touches
from domain.scores import CONNECTOR_V1, CONNECTOR_V2_DRAFT
from services.projector.appliers.scores import ScoreApplier, score_applier
from tests.projector import test_appliers as base

pytestmark = pytest.mark.anyio


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


def side_by_side() -> list[ScoreApplier]:
    return [score_applier(CONNECTOR_V1)(), score_applier(CONNECTOR_V2_DRAFT)()]


async def build(
    conn: AsyncConnection[Any],
    appliers: list[ScoreApplier],
    entries: Sequence[Entry],
    sizes: Sequence[int],
) -> str:
    schema = f"score_{uuid.uuid4().hex[:12]}"
    async with conn.transaction():
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for applier in appliers:
            await applier.create_tables(conn, schema)
    start, after = 0, 0
    for size in sizes:
        batch = entries[start : start + size]
        start += size
        if batch:
            async with conn.transaction():
                for applier in appliers:
                    await applier.apply(conn, schema, batch, after=after)
            after = batch[-1].position
    return schema


async def dump(
    conn: AsyncConnection[Any], schema: str, appliers: list[ScoreApplier]
) -> dict[str, Any]:
    tables = {}
    for applier in appliers:
        for table in applier.tables:
            cur = await conn.execute(
                sql.SQL("SELECT * FROM {} AS t ORDER BY t::text").format(
                    sql.Identifier(schema, table)
                )
            )
            tables[table] = await cur.fetchall()
    return tables


def expected_totals(entries: Sequence[Entry], components: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """Counted from scratch: members as they resolve at the end, withdrawn recognitions and
    retracted replies out."""
    survivor: dict[uuid.UUID, uuid.UUID] = {}

    def resolve(member: uuid.UUID) -> uuid.UUID:
        seen = set()
        while member in survivor and member not in seen:
            seen.add(member)
            member = survivor[member]
        return member

    for entry in entries:
        if isinstance(entry.event, e.MembersMerged):
            duplicate, kept = resolve(entry.event.duplicate_id), resolve(entry.event.survivor_id)
            if duplicate != kept:
                survivor[duplicate] = kept
    withdrawn = {
        x.event.recognition_id for x in entries if isinstance(x.event, e.RecognitionWithdrawn)
    } | {x.event.contribution_id for x in entries if isinstance(x.event, e.ContributionRetracted)}
    reached: dict[tuple[uuid.UUID, str], set[uuid.UUID]] = {}
    authors: dict[uuid.UUID, uuid.UUID] = {}
    for entry in entries:
        touched = touches(entry.event, authors)
        if isinstance(entry.event, e.ContributionRecorded):
            authors[entry.event.contribution_id] = entry.event.member_id
        for component, member, counterpart, ref in touched:
            member, counterpart = resolve(member), resolve(counterpart)
            if component in components and ref not in withdrawn and member != counterpart:
                reached.setdefault((member, component), set()).add(counterpart)
    return {(m, c, len(others)) for (m, c), others in reached.items()}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=base.split_ledgers())
async def test_any_split_builds_the_same_score_tables_as_a_rebuild_and_the_right_totals(
    conn: AsyncConnection[Any], case: tuple[list[Entry], list[int], list[bool]]
) -> None:
    entries, sizes, _ = case
    whole = await build(conn, side_by_side(), entries, [len(entries)])
    split = await build(conn, side_by_side(), entries, sizes)
    try:
        appliers = side_by_side()
        assert await dump(conn, split, appliers) == await dump(conn, whole, appliers)
        for applier in appliers:
            cur = await conn.execute(
                sql.SQL("SELECT member_id, component, value FROM {}").format(
                    sql.Identifier(whole, applier.formula.table("totals"))
                )
            )
            found = set(await cur.fetchall())
            assert found == expected_totals(entries, applier.formula.counted)
    finally:
        for schema in (whole, split):
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
