"""The graph job's leaderboards for windows with `until`: the top PAST_DEPTH members of
every window ending on any day the ledger can fill, so a request reads one index range.

A window counts a counterpart when one of its days falls in [end - w, end), so one
counterpart counts for the end days (x, x + w] of each of its days x. For its days in
order, each adds the part of its span the previous one did not cover:
(max(x, previous + w), x + w]. Those spans, as +1/-1 at their edges per member and end
day, summed along the days, give every member's count for every end day at once
(numpy), from one read of the distinct (member, component, counterpart, day) rows: the
same numbers as the read-time aggregate (`services.queries.scores.ranking`), which the
tests compare on random ledgers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection, sql

from domain.scores import TOOK, Formula
from services.queries import scores as queries

PAST_DEPTH = 100
"""Members kept per end day: the most a leaderboard request may ask for (`limit`)."""
EPOCH = date(2000, 1, 1)
NO_DAY = -(10**9)
"""No previous day: the counterpart's first."""
SCALE = 10_000
"""Values to 4 decimals as integers, as the read-time ranking rounds them."""

TOUCHED = """
    WITH members AS (
        SELECT member_id, (row_number() OVER (ORDER BY member_id) - 1)::int AS idx
        FROM {profiles}
        WHERE merged_into IS NULL
    ),
    touched AS (
        SELECT DISTINCT member_id, component, counterpart_id, NULL::uuid AS second, day
        FROM {evidence}
        WHERE component = ANY(%(counted)s)
        UNION ALL
        SELECT DISTINCT introducer_id, %(took)s, member_a, member_b,
               (evidence_at AT TIME ZONE 'UTC')::date
        FROM {pairs}
        WHERE %(took_counted)s
          AND evidence_at <= least(introduced_at + %(took_window)s, now())
    )
    SELECT m.idx,
           array_position(%(components)s::text[], t.component) - 1,
           t.day - DATE '2000-01-01',
           coalesce(
               lag(t.day) OVER (
                   PARTITION BY t.member_id, t.component, t.counterpart_id, t.second
                   ORDER BY t.day
               ) - DATE '2000-01-01',
               %(no_day)s
           )
    FROM touched t
    JOIN members m USING (member_id)
"""
MEMBERS = """
    SELECT member_id FROM {profiles} WHERE merged_into IS NULL ORDER BY member_id
"""


class PastBoard(msgspec.Struct, kw_only=True):
    """One window's kept end days: `first_day`..`last_day` (None: nothing counted)."""

    span: str
    first_day: date | None
    last_day: date | None
    rows: list[tuple[date, int, Any, float, dict[str, float]]]
    """(end_day, rank, member_id, value, components)"""


def span_days(span: str) -> int | None:
    return None if span == "all" else queries.WINDOW_DAYS[span]


async def rank_past(
    conn: AsyncConnection[Any],
    formula: Formula,
    schema: str,
    sources: str,
    took_window: timedelta,
) -> list[PastBoard]:
    """Every window's kept end days, from the snapshot `conn` reads in (pairs that took
    by `now()`, as the read-time ranking counts them)."""
    names = [c.name for c in formula.components if c.name in formula.counted or c.name == TOOK]
    query = sql.SQL(TOUCHED).format(
        profiles=sql.Identifier(sources, "member_profiles"),
        evidence=sql.Identifier(schema, formula.table("evidence")),
        pairs=sql.Identifier(sources, "introduction_pairs"),
    )
    params = {
        "counted": list(formula.counted),
        "took": TOOK,
        "took_counted": formula.has(TOOK),
        "took_window": took_window,
        "components": names,
        "no_day": NO_DAY,
    }
    data = bytearray()
    async with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(query), params) as copy:
        async for chunk in copy:
            data += chunk
    touched = np.array(bytes(data).split(), dtype=np.int64).reshape(-1, 4)
    cur = await conn.execute(
        sql.SQL(MEMBERS).format(profiles=sql.Identifier(sources, "member_profiles"))
    )
    members = [row[0] for row in await cur.fetchall()]
    weights = [formula.weight(n) for n in names]
    return [_board(span, touched, members, names, weights) for span in queries.RANKED_WINDOWS]


def _board(
    span: str,
    touched: NDArray[np.int64],
    members: list[Any],
    names: list[str],
    weights: list[float],
) -> PastBoard:
    if len(touched) == 0 or not members:
        return PastBoard(span=span, first_day=None, last_day=None, rows=[])
    w = span_days(span)
    member, component, day, previous = touched.T
    first = int(day.min()) + 1
    last = int(day.max()) + (w if w is not None else 1)
    length = last - first + 2  # one past the last kept end day: where the spans close
    # Where each row's span opens and closes (`all` never closes; a later day adds nothing).
    if w is None:
        opens, closes = np.where(previous == NO_DAY, day + 1, last + 1), None
    else:
        opens, closes = np.maximum(day, previous + w) + 1, day + w + 1

    def summed(which: NDArray[np.bool_], column: NDArray[np.int64], width: int, by: Any) -> Any:
        """Per (end day, column): the rows' `by` summed over the spans that hold the day."""
        grid = np.bincount(
            (opens[which] - first) * width + column, weights=by, minlength=length * width
        )
        if closes is not None:
            grid -= np.bincount(
                (closes[which] - first) * width + column, weights=by, minlength=length * width
            )
        days = grid.reshape(length, width)
        np.cumsum(days, axis=0, out=days)
        return days[:-1]

    count = len(members)
    every = np.ones(len(member), dtype=bool)
    scaled = summed(every, member, count, np.asarray(weights)[component] * SCALE)
    np.rint(scaled, out=scaled)
    # Best first, then the lower member id, as ORDER BY value DESC, member_id: one key.
    key = scaled.astype(np.int64)
    del scaled
    key *= count
    key += np.arange(count - 1, -1, -1)
    depth = min(PAST_DEPTH, count)
    top = np.argpartition(key, count - depth, axis=1)[:, count - depth :]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(key, top, 1), axis=1), 1)
    values = np.take_along_axis(key, top, 1) // count
    del key
    # Each component, counted only for the members some day's top holds.
    chosen = np.unique(top)
    column = np.full(count, -1, dtype=np.int64)
    column[chosen] = np.arange(len(chosen))
    per = []
    for i in range(len(names)):
        which = (component == i) & (column[member] >= 0)
        counts = summed(which, column[member[which]], len(chosen), None)
        per.append(np.take_along_axis(counts, column[top], 1).astype(np.int64).tolist())
    return PastBoard(
        span=span,
        first_day=EPOCH + timedelta(days=first),
        last_day=EPOCH + timedelta(days=last),
        rows=list(_rows(first, top, values, per, members, names)),
    )


def _rows(
    first: int,
    top: NDArray[np.int64],
    values: NDArray[np.int64],
    per: list[list[list[int]]],
    members: list[Any],
    names: list[str],
) -> Iterator[tuple[date, int, Any, float, dict[str, float]]]:
    for e, (indexes, scores) in enumerate(zip(top.tolist(), values.tolist(), strict=True)):
        end_day = EPOCH + timedelta(days=first + e)
        for rank, (index, value) in enumerate(zip(indexes, scores, strict=True)):
            if value <= 0:
                break
            components = {
                name: float(c[e][rank]) for name, c in zip(names, per, strict=True) if c[e][rank]
            }
            yield end_day, rank + 1, members[index], value / SCALE, components
