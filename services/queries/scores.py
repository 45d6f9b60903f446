"""Reads of scores: a member's components, leaderboards and the events behind each point.

Counted components come from the score version's own read model, pairs that took from
`read.introduction_pairs` (the window applied at read time, as there), brokerage from
the version's graph job. Leaderboards are ranked by that job too (`ranking`, written to
the version's `_ranked` table): a request reads the top rows of an index, and ranks at
read time only what the job has not ranked (docs/scores.md, "Leaderboards").
Nothing here reads `events`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from domain.scores import BROKERAGE, TOOK, Formula
from services.queries.cursors import EvidenceCursor, encode_cursor
from services.queries.stats import Window, window_of

DEFAULT_TOOK_WINDOW = timedelta(days=30)
"""As the introductions' (LEDGER_INTRODUCTION_WINDOW_DAYS changes both)."""

WINDOW_DAYS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
RANKED_WINDOWS = ("all", *WINDOW_DAYS)
"""The leaderboards the graph job ranks: the score now, and each window ending today."""
PAST = "until:"
"""The graph job's boards of a window ending on any past day: `until:30d` in `_boards`,
the first and last end day it kept, rows in `_past` (services/projector/appliers/past_boards.py)."""


def score_window(name: str, until: str | None, now: datetime) -> Window | None:
    """None for the score now; else whole UTC days as the leaderboards count them.
    Raises ValueError for a bad `until`."""
    if name == "all":
        return None if until is None else window_of("all", until, now)
    end = window_of("7d", until, now).end_day
    assert end is not None
    try:
        return Window(first_day=end - timedelta(days=WINDOW_DAYS[name]), end_day=end)
    except OverflowError:
        raise ValueError(f"until {until!r} is out of range for a {name} window") from None


def reads(formula: Formula) -> tuple[str, ...]:
    """The projections a score version's reads wait for (`min_position`)."""
    return (formula.projection, "introductions", "connections", "member_profiles")


class AsOf(msgspec.Struct, kw_only=True):
    position: int
    """Every counted component includes the ledger up to here."""
    brokerage_position: int | None
    """The connections the graph job last measured reflect the ledger up to here."""
    brokerage_computed_at: datetime | None


class ComponentValue(msgspec.Struct, kw_only=True):
    name: str
    weight: float
    value: float
    points: float


class ScoreValue(msgspec.Struct, kw_only=True):
    name: str
    version: int
    value: float
    components: list[ComponentValue]
    as_of: AsOf


class Ranked(msgspec.Struct, kw_only=True):
    rank: int
    member_id: UUID
    display_name: str
    value: float
    components: dict[str, float]


class EvidenceOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    position: int
    """The event's ledger position."""
    event_id: UUID | None
    """GET /v1/events/{event_id}"""
    counterpart_id: UUID | None = None
    introduction_id: UUID | None = None
    pair: list[UUID] | None = None
    """For pairs_took: the two members introduced; `position` is the introduction's."""
    ref_id: UUID | None = None
    """The id the event gave what it recorded (a mention, a recognition, an introduction)."""
    day: date | None = None
    evidence_position: int | None = None
    """For pairs_took: the first contact of the two, the event that made the pair take."""
    evidence_event_id: UUID | None = None


class EvidencePage(msgspec.Struct, kw_only=True):
    items: list[EvidenceOut]
    next_cursor: str | None


async def as_of(conn: AsyncConnection[Any], formula: Formula) -> AsOf:
    cur = await conn.execute(
        "SELECT coalesce(min(position), 0) FROM projection_builds "
        "WHERE state = 'live' AND name = ANY(%s)",
        [[formula.projection, "introductions"]],
    )
    position = (await cur.fetchone() or (0,))[0]
    cur = await conn.execute(
        sql.SQL("SELECT position, computed_at FROM read.{} ORDER BY position DESC LIMIT 1").format(
            sql.Identifier(formula.table("graph_runs"))
        )
    )
    run = await cur.fetchone()
    return AsOf(
        position=int(position),
        brokerage_position=run[0] if run else None,
        brokerage_computed_at=run[1] if run else None,
    )


async def member_exists(conn: AsyncConnection[Any], member_id: UUID) -> bool:
    cur = await conn.execute("SELECT 1 FROM read.member_profiles WHERE member_id = %s", [member_id])
    return await cur.fetchone() is not None


def _components(
    formula: Formula, window: Window | None, tables: str = "read", sources: str = "read"
) -> tuple[sql.Composed, dict[str, Any]]:
    """(member_id, component, value) rows of every component the formula has; the version's
    tables in schema `tables`, the introductions' in `sources` (both `read` but in tests)."""
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    counted = list(formula.counted)
    if counted and window is None:
        parts.append(
            sql.SQL(
                "SELECT member_id, component, value::float8 AS value FROM {} "
                "WHERE component = ANY(%(counted)s)"
            ).format(sql.Identifier(tables, formula.table("totals")))
        )
    elif counted and window is not None:
        parts.append(
            sql.SQL(
                "SELECT member_id, component, count(DISTINCT counterpart_id)::float8 AS value "
                "FROM {} WHERE component = ANY(%(counted)s) AND {} "
                "GROUP BY member_id, component"
            ).format(sql.Identifier(tables, formula.table("evidence")), _days(window, "day"))
        )
    params["counted"] = counted
    if formula.has(TOOK):
        took_window = (
            _days(window, "(evidence_at AT TIME ZONE 'UTC')::date") if window else sql.SQL("true")
        )
        parts.append(
            sql.SQL(
                "SELECT introducer_id AS member_id, {} AS component, "
                "count(DISTINCT (member_a, member_b))::float8 AS value "
                "FROM {} "
                "WHERE evidence_at <= least(introduced_at + %(took_window)s, now()) AND {} "
                "GROUP BY introducer_id"
            ).format(sql.Literal(TOOK), sql.Identifier(sources, "introduction_pairs"), took_window)
        )
    if formula.has(BROKERAGE) and window is None:
        parts.append(
            sql.SQL("SELECT member_id, {} AS component, value FROM {}").format(
                sql.Literal(BROKERAGE), sql.Identifier(tables, formula.table("brokerage"))
            )
        )
    if window is not None:
        params.update(window.params())
    return sql.SQL(" UNION ALL ").join(parts), params


def _days(window: Window | None, column: str) -> sql.Composable:
    where: list[sql.Composable] = [sql.SQL("true")]
    if window is not None and window.first_day is not None:
        where.append(sql.SQL(column + " >= %(first_day)s"))
    if window is not None and window.end_day is not None:
        where.append(sql.SQL(column + " < %(end_day)s"))
    return sql.SQL(" AND ").join(where)


def _weights(formula: Formula) -> sql.Composed:
    return sql.SQL("(VALUES {}) AS w(component, weight)").format(
        sql.SQL(", ").join(
            sql.SQL("({}, {}::float8)").format(sql.Literal(c.name), sql.Literal(c.weight))
            for c in formula.components
        )
    )


async def member_score(
    conn: AsyncConnection[Any], formula: Formula, member_id: UUID, took_window: timedelta
) -> ScoreValue:
    """A member's value now, with every component (zero when nothing counted)."""
    inner, params = _components(formula, None)
    query = sql.SQL("SELECT component, value FROM ({}) c WHERE member_id = %(member)s").format(
        inner
    )
    cur = await conn.execute(query, {**params, "member": member_id, "took_window": took_window})
    values = {component: float(value) for component, value in await cur.fetchall()}
    components = [
        ComponentValue(
            name=c.name,
            weight=c.weight,
            value=values.get(c.name, 0.0),
            points=round(c.weight * values.get(c.name, 0.0), 4),
        )
        for c in formula.components
    ]
    return ScoreValue(
        name=formula.name,
        version=formula.version,
        value=formula.value(values),
        components=components,
        as_of=await as_of(conn, formula),
    )


def ranking(
    formula: Formula, window: Window | None, tables: str = "read", sources: str = "read"
) -> tuple[sql.Composed, dict[str, Any]]:
    """Every member with points (merged ones left out), best first: (member_id, value,
    display_name, components). Over a window, what they earned within it. Needs
    `took_window`."""
    inner, params = _components(formula, window, tables, sources)
    query = sql.SQL("""
        SELECT s.member_id, p.display_name, s.value, s.components
        FROM (
            SELECT c.member_id,
                   round(sum(w.weight * c.value)::numeric, 4)::float8 AS value,
                   jsonb_object_agg(c.component, c.value) AS components
            FROM ({inner}) c
            JOIN {weights} USING (component)
            GROUP BY c.member_id
        ) s
        JOIN {profiles} p ON p.member_id = s.member_id AND p.merged_into IS NULL
        WHERE s.value > 0
        ORDER BY s.value DESC, s.member_id
    """).format(
        inner=inner,
        weights=_weights(formula),
        profiles=sql.Identifier(sources, "member_profiles"),
    )
    return query, params


async def leaderboard(
    conn: AsyncConnection[Any],
    formula: Formula,
    window: Window | None,
    took_window: timedelta,
    limit: int,
) -> list[Ranked]:
    """Top members by the formula, ranked now over every member (what the graph job does
    for the leaderboards it keeps; a request reads `ranked` first)."""
    query, params = ranking(formula, window)
    query += sql.SQL(" LIMIT %(limit)s")
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, {**params, "took_window": took_window, "limit": limit})
    return _ranked(formula, await cur.fetchall())


class Board(msgspec.Struct, kw_only=True):
    """What the graph job last ranked for one leaderboard, and what it reflects."""

    span: str
    first_day: date | None
    end_day: date | None
    took_window: timedelta
    as_of: AsOf


async def ranked(
    conn: AsyncConnection[Any],
    formula: Formula,
    span: str,
    window: Window | None,
    took_window: timedelta,
    at_least: int | None,
    limit: int,
) -> tuple[AsOf, list[Ranked]] | None:
    """The job's ranking of this leaderboard, when it has one for these very days and
    introduction window, at `at_least` or later; None otherwise (rank at read time)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL("""
            SELECT span, first_day, end_day, took_window, position, brokerage_position,
                   brokerage_computed_at
            FROM read.{}
            WHERE span = %(span)s
        """).format(sql.Identifier(formula.table("boards"))),
        {"span": span},
    )
    found = await cur.fetchone()
    if found is None:
        return None
    board = Board(
        span=found["span"],
        first_day=found["first_day"],
        end_day=found["end_day"],
        took_window=found["took_window"],
        as_of=AsOf(
            position=found["position"],
            brokerage_position=found["brokerage_position"],
            brokerage_computed_at=found["brokerage_computed_at"],
        ),
    )
    days = (window.first_day, window.end_day) if window else (None, None)
    if (
        (board.first_day, board.end_day) != days
        or board.took_window != took_window
        or (at_least is not None and board.as_of.position < at_least)
    ):
        return None
    # The primary key's order: the first `limit` rows of one span, whoever is merged since.
    await cur.execute(
        sql.SQL("""
            SELECT r.member_id, p.display_name, r.value, r.components
            FROM read.{} r
            JOIN read.member_profiles p ON p.member_id = r.member_id AND p.merged_into IS NULL
            WHERE r.span = %(span)s
            ORDER BY r.rank
            LIMIT %(limit)s
        """).format(sql.Identifier(formula.table("ranked"))),
        {"span": span, "limit": limit},
    )
    return board.as_of, _ranked(formula, await cur.fetchall())


async def ranked_until(
    conn: AsyncConnection[Any],
    formula: Formula,
    span: str,
    window: Window,
    took_window: timedelta,
    at_least: int | None,
    limit: int,
    tables: str = "read",
) -> tuple[AsOf, list[Ranked]] | None:
    """The job's ranking of a window ending on `window.end_day`, read from one index range
    of `_past`; None when it has none for this introduction window at `at_least` (schema
    `tables` holds the version's tables and the profiles: `read` but in tests)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        sql.SQL("""
            SELECT first_day, end_day, took_window, position, brokerage_position,
                   brokerage_computed_at
            FROM {}
            WHERE span = %(span)s
        """).format(sql.Identifier(tables, formula.table("boards"))),
        {"span": PAST + span},
    )
    found = await cur.fetchone()
    if (
        found is None
        or found["took_window"] != took_window
        or (at_least is not None and found["position"] < at_least)
    ):
        return None
    as_of = AsOf(
        position=found["position"],
        brokerage_position=found["brokerage_position"],
        brokerage_computed_at=found["brokerage_computed_at"],
    )
    end_day = window.end_day
    first, last = found["first_day"], found["end_day"]
    if end_day is None or first is None or end_day < first:
        return as_of, []  # before the first day anything counted: nobody has points
    if end_day > last:
        if span != "all":
            return as_of, []  # the window is past the last day anything counted
        end_day = last  # every day counted is in it: the same as the last kept
    await cur.execute(
        sql.SQL("""
            SELECT r.member_id, p.display_name, r.value, r.components
            FROM {} r
            JOIN {} p ON p.member_id = r.member_id AND p.merged_into IS NULL
            WHERE r.span = %(span)s AND r.end_day = %(end_day)s
            ORDER BY r.rank
            LIMIT %(limit)s
        """).format(
            sql.Identifier(tables, formula.table("past")),
            sql.Identifier(tables, "member_profiles"),
        ),
        {"span": span, "end_day": end_day, "limit": limit},
    )
    return as_of, _ranked(formula, await cur.fetchall())


def _ranked(formula: Formula, rows: list[dict[str, Any]]) -> list[Ranked]:
    return [
        Ranked(
            rank=i + 1,
            member_id=row["member_id"],
            display_name=row["display_name"] or "",
            value=float(row["value"]),
            components={
                c.name: float(row["components"].get(c.name, 0)) for c in formula.components
            },
        )
        for i, row in enumerate(rows)
    ]


async def evidence(
    conn: AsyncConnection[Any],
    formula: Formula,
    member_id: UUID,
    component: str,
    took_window: timedelta,
    after: EvidenceCursor | None,
    limit: int,
) -> EvidencePage:
    """The events behind a component, oldest first, after the cursor's event."""
    if component == TOOK:
        return await _took_evidence(conn, member_id, took_window, after, limit)
    if component == BROKERAGE:
        return EvidencePage(items=[], next_cursor=None)
    query = sql.SQL("""
        SELECT position, event_id, counterpart_id, ref_id, day
        FROM read.{}
        WHERE member_id = %(member)s AND component = %(component)s
          AND (position, counterpart_id) > (%(position)s, %(first)s)
        ORDER BY position, counterpart_id
        LIMIT %(limit)s
    """).format(sql.Identifier(formula.table("evidence")))
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        query,
        {
            "member": member_id,
            "component": component,
            "position": after.position if after else 0,
            "first": after.first if after else UUID(int=0),
            "limit": limit + 1,
        },
    )
    rows = await cur.fetchall()
    items = [msgspec.convert(row, EvidenceOut) for row in rows[:limit]]
    more = len(rows) > limit
    last = items[-1] if items and more else None
    return EvidencePage(
        items=items,
        next_cursor=encode_cursor(
            EvidenceCursor(last.position, last.counterpart_id or UUID(int=0), None)
        )
        if last
        else None,
    )


async def _took_evidence(
    conn: AsyncConnection[Any],
    member_id: UUID,
    took_window: timedelta,
    after: EvidenceCursor | None,
    limit: int,
) -> EvidencePage:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        """
        SELECT introduction_id, member_a, member_b, position, evidence_position,
               evidence_event_id
        FROM read.introduction_pairs
        WHERE introducer_id = %(member)s
          AND evidence_at <= least(introduced_at + %(took_window)s, now())
          AND (position, member_a, member_b) > (%(position)s, %(first)s, %(second)s)
        ORDER BY position, member_a, member_b
        LIMIT %(limit)s
        """,
        {
            "member": member_id,
            "took_window": took_window,
            "position": after.position if after else 0,
            "first": after.first if after else UUID(int=0),
            "second": (after.second if after else None) or UUID(int=0),
            "limit": limit + 1,
        },
    )
    rows = await cur.fetchall()
    items = [
        EvidenceOut(
            position=row["position"],
            event_id=None,
            introduction_id=row["introduction_id"],
            pair=[row["member_a"], row["member_b"]],
            evidence_position=row["evidence_position"],
            evidence_event_id=row["evidence_event_id"],
        )
        for row in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return EvidencePage(
        items=items,
        next_cursor=encode_cursor(
            EvidenceCursor(last["position"], last["member_a"], last["member_b"])
        )
        if last
        else None,
    )
