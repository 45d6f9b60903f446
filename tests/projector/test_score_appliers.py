"""Score versions against PostgreSQL: any batch split builds what a rebuild builds, v1 and
v2 side by side from one ledger, every total is the distinct counterparts it claims, and
the leaderboards the graph job ranks are the scores counted from scratch."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import AsyncConnection, sql

from domain import events as e
from domain.projections import Entry, utc_day
from domain.projections.scores import touches
from domain.scores import BROKERAGE, CONNECTOR_V1, CONNECTOR_V2_DRAFT, TOOK, Formula
from services.projector.appliers import Applier
from services.projector.appliers.scores import ScoreApplier, score_applier, write_boards
from services.queries import scores as q
from tests.appliers import APPLIERS
from tests.domain.projections.strategies import valid_ledgers
from tests.domain.projections.timeline import START
from tests.projector import test_appliers as base

pytestmark = pytest.mark.anyio


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


def side_by_side() -> list[ScoreApplier]:
    return [score_applier(CONNECTOR_V1)(), score_applier(CONNECTOR_V2_DRAFT)()]


@asynccontextmanager
async def scratch_schema(
    conn: AsyncConnection[Any], appliers: Sequence[Applier], prefix: str
) -> AsyncIterator[str]:
    """A schema of its own holding the appliers' tables, dropped after the block."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    async with conn.transaction():
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for applier in appliers:
            await applier.create_tables(conn, schema)
    try:
        yield schema
    finally:
        await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


async def apply_in_batches(
    conn: AsyncConnection[Any],
    appliers: Sequence[Applier],
    schema: str,
    entries: Sequence[Entry],
    sizes: Sequence[int],
    after: int = 0,
) -> int:
    """The entries applied in batches of these sizes, a transaction each, as catch-up runs
    them (what `sizes` leaves over is not applied); the last position applied."""
    start = 0
    for size in sizes:
        batch = entries[start : start + size]
        start += size
        if batch:
            async with conn.transaction():
                for applier in appliers:
                    await applier.apply(conn, schema, batch, after=after)
            after = batch[-1].position
    return after


def ranked_at(position: int) -> q.AsOf:
    """As the graph job ranks without brokerage (the tests' ledgers leave it out)."""
    return q.AsOf(position=position, brokerage_position=None, brokerage_computed_at=None)


def by_component(formula: Formula, found: dict[str, Any]) -> dict[str, float]:
    """A board row's components, every one of the formula's named (absent: 0)."""
    return {c.name: float(found.get(c.name, 0)) for c in formula.components}


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


def resolver(entries: Sequence[Entry]) -> Callable[[uuid.UUID], uuid.UUID]:
    """Who each member is at the end of the ledger, down every chain of merges."""
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
    return resolve


def reached(
    entries: Sequence[Entry],
    components: tuple[str, ...],
    days: tuple[date | None, date | None] = (None, None),
) -> dict[tuple[uuid.UUID, str], set[uuid.UUID]]:
    """Counted from scratch: members as they resolve at the end, withdrawn recognitions and
    retracted replies out, only events of the UTC days given (from, up to but not including)."""
    resolve = resolver(entries)
    withdrawn = {
        x.event.recognition_id for x in entries if isinstance(x.event, e.RecognitionWithdrawn)
    } | {x.event.contribution_id for x in entries if isinstance(x.event, e.ContributionRetracted)}
    first, end = days
    found: dict[tuple[uuid.UUID, str], set[uuid.UUID]] = {}
    authors: dict[uuid.UUID, uuid.UUID] = {}
    for entry in entries:
        touched = touches(entry.event, authors)
        if isinstance(entry.event, e.ContributionRecorded):
            authors[entry.event.contribution_id] = entry.event.member_id
        day = utc_day(entry.occurred_at)
        if (first is not None and day < first) or (end is not None and day >= end):
            continue
        for component, member, counterpart, ref in touched:
            member, counterpart = resolve(member), resolve(counterpart)
            if component in components and ref not in withdrawn and member != counterpart:
                found.setdefault((member, component), set()).add(counterpart)
    return found


def expected_totals(entries: Sequence[Entry], components: tuple[str, ...]) -> set[tuple[Any, ...]]:
    return {(m, c, len(others)) for (m, c), others in reached(entries, components).items()}


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
    appliers, apart = side_by_side(), side_by_side()  # no state shared between the two
    async with (
        scratch_schema(conn, appliers, "score") as whole,
        scratch_schema(conn, apart, "score") as split,
    ):
        await apply_in_batches(conn, appliers, whole, entries, [len(entries)])
        await apply_in_batches(conn, apart, split, entries, sizes)
        assert await dump(conn, split, appliers) == await dump(conn, whole, appliers)
        for applier in appliers:
            cur = await conn.execute(
                sql.SQL("SELECT member_id, component, value FROM {}").format(
                    sql.Identifier(whole, applier.formula.table("totals"))
                )
            )
            found = set(await cur.fetchall())
            assert found == expected_totals(entries, applier.formula.counted)


@st.composite
def dated_ledgers(draw: st.DrawFn) -> tuple[list[Entry], datetime]:
    """Valid ledgers with introductions and the mentions that make some of them take,
    dated over 400 days (mostly the first 40), and the moment the leaderboards are ranked at."""
    spans = st.one_of(st.integers(0, 40), st.integers(0, 400))
    dated: list[tuple[e.Event, int]] = [
        (x.event, draw(spans)) for x in draw(valid_ledgers(max_members=5, max_steps=30))
    ]
    members = [x.member_id for x, _ in dated if isinstance(x, e.MemberRegistered)]
    for _ in range(draw(st.integers(0, 6)) if len(members) >= 3 else 0):
        three = draw(st.permutations(members))[:3]
        day = draw(spans)
        introduction = e.IntroductionMade(
            introduction_id=draw(st.uuids()), introducer_id=three[0], introduced_ids=three[1:]
        )
        dated.insert(draw(st.integers(len(members), len(dated))), (introduction, day))
        a, b = draw(st.permutations(three[1:]))
        mention = e.MentionRecorded(mention_id=draw(st.uuids()), member_id=a, mentioned_id=b)
        dated.append((mention, day + draw(st.integers(0, 40))))
    entries = [
        Entry(position=i, occurred_at=START + timedelta(days=d), event=event)
        for i, (event, d) in enumerate(dated, start=1)
    ]
    ranked_at = draw(st.one_of(st.integers(0, 50), st.integers(0, 420)))
    return entries, START + timedelta(days=ranked_at, hours=3)


async def expected_board(
    conn: AsyncConnection[Any],
    schema: str,
    formula: Formula,
    entries: list[Entry],
    window: q.Window | None,
    took_window: timedelta,
) -> list[tuple[uuid.UUID, float, dict[str, float]]]:
    """The ranking by hand: distinct counterparts from the events, pairs that took from the
    introductions' rows (their rule applied in Python), no brokerage until the graph job."""
    days = (window.first_day, window.end_day) if window else (None, None)
    values: dict[uuid.UUID, dict[str, float]] = {}
    for (member, component), others in reached(entries, formula.counted, days).items():
        values.setdefault(member, {})[component] = len(others)
    cur = await conn.execute(
        sql.SQL(
            "SELECT introducer_id, member_a, member_b, introduced_at, evidence_at FROM {}"
        ).format(sql.Identifier(schema, "introduction_pairs"))
    )
    took: dict[uuid.UUID, set[tuple[uuid.UUID, uuid.UUID]]] = {}
    now = datetime.now(UTC)
    for introducer, a, b, introduced_at, evidence_at in await cur.fetchall():
        if evidence_at is None or evidence_at > min(introduced_at + took_window, now):
            continue
        day = evidence_at.astimezone(UTC).date()
        if (days[0] is not None and day < days[0]) or (days[1] is not None and day >= days[1]):
            continue
        took.setdefault(introducer, set()).add((a, b))
    for introducer, pairs in took.items():
        values.setdefault(introducer, {})[TOOK] = len(pairs)
    cur = await conn.execute(
        sql.SQL("SELECT member_id FROM {} WHERE merged_into IS NULL").format(
            sql.Identifier(schema, "member_profiles")
        )
    )
    standing = {row[0] for row in await cur.fetchall()}
    board = [
        (member, formula.value(found), found)
        for member, found in values.items()
        if member in standing and formula.value(found) > 0
    ]
    board.sort(key=lambda row: (-row[1], row[0]))
    return [(m, v, by_component(formula, found)) for m, v, found in board]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=dated_ledgers(), took_days=st.sampled_from([1, 30, 90]))
async def test_every_ranked_leaderboard_is_the_scores_counted_from_scratch(
    conn: AsyncConnection[Any], case: tuple[list[Entry], datetime], took_days: int
) -> None:
    entries, now = case
    took_window = timedelta(days=took_days)
    appliers = [*APPLIERS, score_applier(CONNECTOR_V2_DRAFT)()]
    async with scratch_schema(conn, appliers, "boards") as schema:
        await apply_in_batches(conn, appliers, schema, entries, [len(entries)])
        as_of = ranked_at(entries[-1].position)
        for formula in (CONNECTOR_V1, CONNECTOR_V2_DRAFT):
            async with conn.transaction():
                await write_boards(conn, formula, schema, schema, as_of, took_window, now)
            for span in q.RANKED_WINDOWS:
                window = q.score_window(span, None, now)
                cur = await conn.execute(
                    sql.SQL(
                        "SELECT member_id, value, components FROM {} WHERE span = %s ORDER BY rank"
                    ).format(sql.Identifier(schema, formula.table("ranked"))),
                    [span],
                )
                kept = [
                    (m, v, by_component(formula, found)) for m, v, found in await cur.fetchall()
                ]
                expected = await expected_board(conn, schema, formula, entries, window, took_window)
                assert kept == expected, (formula.projection, span)
                assert all(found[BROKERAGE] == 0 for _, _, found in kept)


async def read_time_board(
    conn: AsyncConnection[Any],
    schema: str,
    formula: Formula,
    window: q.Window,
    took_window: timedelta,
) -> list[tuple[uuid.UUID, float, dict[str, float]]]:
    """The read-time aggregate every windowed leaderboard with `until` ran before."""
    query, params = q.ranking(formula, window, schema, schema)
    cur = await conn.execute(query, {**params, "took_window": took_window})
    return [(m, v, by_component(formula, found)) for m, _, v, found in await cur.fetchall()]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    case=dated_ledgers(),
    took_days=st.sampled_from([1, 30, 90]),
    ends=st.lists(st.integers(-3, 900), min_size=3, max_size=8),
)
async def test_every_past_leaderboard_is_the_read_time_ranking_of_its_days(
    conn: AsyncConnection[Any],
    case: tuple[list[Entry], datetime],
    took_days: int,
    ends: list[int],
) -> None:
    entries, now = case
    took_window = timedelta(days=took_days)
    appliers = [*APPLIERS, score_applier(CONNECTOR_V2_DRAFT)()]
    # Every day an event fell on, the days around it, and some drawn: the spans' edges.
    days = {utc_day(x.occurred_at) for x in entries}
    end_days = {d + timedelta(days=k) for d in days for k in (0, 1)}
    end_days |= {START.date() + timedelta(days=k) for k in ends}
    async with scratch_schema(conn, appliers, "past") as schema:
        await apply_in_batches(conn, appliers, schema, entries, [len(entries)])
        as_of = ranked_at(entries[-1].position)
        for formula in (CONNECTOR_V1, CONNECTOR_V2_DRAFT):
            async with conn.transaction():
                await write_boards(conn, formula, schema, schema, as_of, took_window, now)
            for span in q.RANKED_WINDOWS:
                for end_day in sorted(end_days):
                    window = q.score_window(span, str(end_day), now)
                    assert window is not None
                    found = await q.ranked_until(
                        conn, formula, span, window, took_window, None, 100, schema
                    )
                    assert found is not None
                    kept = [(r.member_id, r.value, r.components) for r in found[1]]
                    expected = await read_time_board(conn, schema, formula, window, took_window)
                    assert kept == expected, (formula.projection, span, end_day)
                    assert kept == await expected_board(
                        conn, schema, formula, entries, window, took_window
                    )
            assert (
                await q.ranked_until(
                    conn, formula, "30d", window, took_window, as_of.position + 1, 10, schema
                )
                is None
            ), "a min_position past the ranking is not answered from it"


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=dated_ledgers(), cuts=st.lists(st.integers(1, 80), max_size=6))
async def test_past_leaderboards_from_a_catch_up_in_batches_equal_those_from_a_rebuild(
    conn: AsyncConnection[Any], case: tuple[list[Entry], datetime], cuts: list[int]
) -> None:
    entries, now = case
    took_window = timedelta(days=30)
    as_of = ranked_at(entries[-1].position)
    boards = []
    for sizes in ([len(entries)], [*cuts, len(entries)]):
        appliers = [*APPLIERS, score_applier(CONNECTOR_V2_DRAFT)()]
        async with scratch_schema(conn, appliers, "past") as schema:
            await apply_in_batches(conn, appliers, schema, entries, sizes)
            found = []
            for formula in (CONNECTOR_V1, CONNECTOR_V2_DRAFT):
                async with conn.transaction():
                    await write_boards(conn, formula, schema, schema, as_of, took_window, now)
                found.append(await past_tables(conn, schema, formula))
            boards.append(found)
            if len(boards) == 1:
                scored = await expected_board(
                    conn, schema, CONNECTOR_V1, entries, None, took_window
                )
    assert boards[0] == boards[1]
    assert bool(boards[0][0][0]) == bool(scored), "whoever has points now is ranked some day"


class RolledBack(Exception):
    """Raised inside a ranking's transaction to undo it."""


async def past_tables(conn: AsyncConnection[Any], schema: str, formula: Formula) -> list[Any]:
    cur = await conn.execute(
        sql.SQL("SELECT * FROM {} ORDER BY span, end_day, rank").format(
            sql.Identifier(schema, formula.table("past"))
        )
    )
    rows = await cur.fetchall()
    cur = await conn.execute(
        sql.SQL(
            "SELECT span, first_day, end_day, members FROM {} "
            "WHERE starts_with(span, %s) ORDER BY span"
        ).format(sql.Identifier(schema, formula.table("boards"))),
        [q.PAST],
    )
    return [rows, await cur.fetchall()]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    case=dated_ledgers(),
    cuts=st.lists(st.integers(1, 80), min_size=1, max_size=4),
    back=st.integers(0, 40),
    undone=st.lists(st.booleans(), max_size=5),
)
async def test_past_leaderboards_ranked_again_only_where_days_changed_equal_a_full_ranking(
    conn: AsyncConnection[Any],
    case: tuple[list[Entry], datetime],
    cuts: list[int],
    back: int,
    undone: list[bool],
) -> None:
    """Ranked after each batch with the job's memory (one ranking rolled back now and
    then), the past boards equal a ranking of every end day from scratch; the last batch
    ends with a mention dated before most of the ledger."""
    entries, now = case
    members = [x.event.member_id for x in entries if isinstance(x.event, e.MemberRegistered)]
    if len(members) >= 2:
        late = e.MentionRecorded(
            mention_id=uuid.uuid4(), member_id=members[0], mentioned_id=members[1]
        )
        entries = [
            *entries,
            Entry(position=len(entries) + 1, occurred_at=START + timedelta(days=back), event=late),
        ]
    took_window = timedelta(days=30)
    appliers = [*APPLIERS, score_applier(CONNECTOR_V2_DRAFT)()]
    jobs = {formula: score_applier(formula)() for formula in (CONNECTOR_V1, CONNECTOR_V2_DRAFT)}
    async with scratch_schema(conn, appliers, "past") as schema:
        start = after = 0
        for index, size in enumerate([*cuts, len(entries)]):
            after = await apply_in_batches(
                conn, appliers, schema, entries[start : start + size], [size], after
            )
            start += size
            as_of = ranked_at(after)
            for formula, job in jobs.items():
                if index < len(undone) and undone[index]:
                    with pytest.raises(RolledBack):
                        async with conn.transaction():
                            await write_boards(
                                conn, formula, schema, schema, as_of, took_window, now, job.past
                            )
                            raise RolledBack
                async with conn.transaction():
                    await write_boards(
                        conn, formula, schema, schema, as_of, took_window, now, job.past
                    )
        for formula, job in jobs.items():
            step_by_step = await past_tables(conn, schema, formula)
            async with conn.transaction():
                await write_boards(conn, formula, schema, schema, as_of, took_window, now, job.past)
                cur = await conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE xmin::text = %s").format(
                        sql.Identifier(schema, formula.table("past"))
                    ),
                    [
                        str(
                            (await (await conn.execute("SELECT txid_current()")).fetchone() or [0])[
                                0
                            ]
                            % 2**32
                        )
                    ],
                )
                assert await cur.fetchone() == (0,), "nothing changed: no end day ranked again"
            async with conn.transaction():
                await write_boards(conn, formula, schema, schema, as_of, took_window, now)
            assert step_by_step == await past_tables(conn, schema, formula), formula.projection
