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

A run after the first ranks again only the end days whose windows hold a day whose rows
changed: each day's rows (member, component, day, previous day) are summed into a digest,
kept in memory (`PastMemory`) with the stamp of the boards it wrote, and compared with the
next run's. Whatever changed them (an event appended or back-dated, a withdrawal, a
merge, a pair that took) changes the digest of the days it touched; a board of an end day
is a function of its window's rows alone, so the others stand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection, sql

from domain.scores import TOOK, Formula
from services.projector.appliers.past_memory import Seen
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
           (array_position(%(components)s::text[], t.component) - 1)::int,
           (t.day - DATE '2000-01-01')::int,
           coalesce(
               lag(t.day) OVER (
                   PARTITION BY t.member_id, t.component, t.counterpart_id, t.second
                   ORDER BY t.day
               ) - DATE '2000-01-01',
               %(no_day)s
           )::int
    FROM touched t
    JOIN members m USING (member_id)
"""
MEMBERS = """
    SELECT member_id FROM {profiles} WHERE merged_into IS NULL ORDER BY member_id
"""
# COPY's binary rows of four int4 columns: a field count, then a length and a value each.
BINARY_ROW = np.dtype(
    [("fields", ">i2")] + [(f"{kind}{i}", ">i4") for i in range(4) for kind in ("length", "value")]
)
BINARY_HEADER = 19  # signature (11), flags (4), header extension length (4)


@dataclass
class PastBoard:
    """One window's kept end days: `first_day`..`last_day` (None: nothing counted)."""

    span: str
    first_day: date | None
    last_day: date | None
    replaced: list[date] | None
    """The end days ranked in this run (their rows replace the kept ones); None: all."""
    rows: list[str]
    """COPY text lines: span, end_day, rank, member_id, value, components"""


def span_days(span: str) -> int | None:
    return None if span == "all" else queries.WINDOW_DAYS[span]


async def read_touched(
    conn: AsyncConnection[Any],
    formula: Formula,
    schema: str,
    sources: str,
    took_window: timedelta,
) -> tuple[NDArray[np.int64], list[Any], list[str]]:
    """(member index, component, day, previous day) rows, the members, the components'
    names, from the snapshot `conn` reads in (pairs that took by `now()`, as the
    read-time ranking counts them)."""
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
    copy_out = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    async with conn.cursor().copy(copy_out, params) as copy:
        async for chunk in copy:
            data += chunk
    extension = int.from_bytes(data[15:19], "big")
    start = BINARY_HEADER + extension
    count = (len(data) - start - 2) // BINARY_ROW.itemsize  # 2: the trailer
    rows = np.frombuffer(data, dtype=BINARY_ROW, count=count, offset=start)
    touched = np.empty((count, 4), dtype=np.int64)
    for i in range(4):
        touched[:, i] = rows[f"value{i}"]
    cur = await conn.execute(
        sql.SQL(MEMBERS).format(profiles=sql.Identifier(sources, "member_profiles"))
    )
    members = [row[0] for row in await cur.fetchall()]
    return touched, members, names


def digests(
    touched: NDArray[np.int64], members: list[Any]
) -> dict[int, tuple[float, float, float]]:
    """Per day with rows: (rows, and the sums of each row's 64-bit hash in two halves), so
    the same rows in any order give the same digest and a changed row another."""
    if len(touched) == 0:
        return {}
    identity = np.array([m.int & (2**64 - 1) ^ (m.int >> 64) for m in members], dtype=np.uint64)
    member, component, day, previous = touched.T
    row = identity[member]
    for part in (component, day, previous):
        row = _mix(row ^ part.astype(np.uint64))
    first = int(day.min())
    at = day - first
    sums = [np.bincount(at, weights=w) for w in (None, row & 0xFFFFFFFF, row >> 32)]
    used = np.flatnonzero(sums[0])
    return {first + int(d): (float(sums[0][d]), float(sums[1][d]), float(sums[2][d])) for d in used}


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser: every input bit moves about half the output bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def changed_days(
    before: Seen | None, now: dict[int, tuple[float, float, float]]
) -> list[int] | None:
    """The days whose rows differ from the last ranking's; None: no ranking to compare."""
    if before is None:
        return None
    return sorted(d for d in before.days.keys() | now.keys() if before.days.get(d) != now.get(d))


def rank_past(
    touched: NDArray[np.int64],
    members: list[Any],
    names: list[str],
    weights: list[float],
    changed: list[int] | None,
) -> list[PastBoard]:
    """Every window's kept end days: all of them, or those whose window holds a changed day."""
    return [
        _board(span, touched, members, names, weights, changed) for span in queries.RANKED_WINDOWS
    ]


def _wanted(w: int | None, first: int, last: int, changed: list[int] | None) -> NDArray[np.bool_]:
    """Which end days of first..last to rank: each changed day x moves (x, x + w]."""
    wanted = np.zeros(last - first + 1, dtype=bool)
    if changed is None:
        wanted[:] = True
        return wanted
    if not changed:
        return wanted
    if w is None:
        wanted[max(changed[0] + 1 - first, 0) :] = True
        return wanted
    edges = np.zeros(last - first + 2, dtype=np.int64)
    for x in changed:
        lo, hi = max(x + 1, first), min(x + w, last)
        if lo <= hi:
            edges[lo - first] += 1
            edges[hi - first + 1] -= 1
    return np.cumsum(edges[:-1]) > 0


def _board(
    span: str,
    touched: NDArray[np.int64],
    members: list[Any],
    names: list[str],
    weights: list[float],
    changed: list[int] | None,
) -> PastBoard:
    if len(touched) == 0 or not members:
        return PastBoard(span=span, first_day=None, last_day=None, replaced=None, rows=[])
    w = span_days(span)
    member, component, day, previous = touched.T
    first = int(day.min()) + 1
    last = int(day.max()) + (w if w is not None else 1)
    wanted = _wanted(w, first, last, changed)
    board = PastBoard(
        span=span,
        first_day=EPOCH + timedelta(days=first),
        last_day=EPOCH + timedelta(days=last),
        replaced=None
        if changed is None
        else [EPOCH + timedelta(days=first + int(e)) for e in np.flatnonzero(wanted)],
        rows=[],
    )
    if not wanted.any():
        return board
    # The grid covers the end days lo..hi; the rows whose spans reach into it.
    lo = first + int(np.argmax(wanted))
    hi = first + len(wanted) - 1 - int(np.argmax(wanted[::-1]))
    wanted = wanted[lo - first : hi - first + 1]
    length = hi - lo + 2  # one past the last end day: where the spans close
    # Where each row's span opens and closes (`all` never closes; a later day adds nothing).
    if w is None:
        keep = (previous == NO_DAY) & (day < hi)
        closes = None
        opens = np.maximum(day[keep] + 1, lo)
    else:
        keep = (day + w >= lo) & (day < hi)
        opens = np.clip(np.maximum(day[keep], previous[keep] + w) + 1, lo, hi + 1)
        closes = np.minimum(day[keep] + w + 1, hi + 1)
    member, component = member[keep], component[keep]

    whole = bool(wanted.all())

    def summed(which: NDArray[np.bool_], column: NDArray[np.int64], width: int, by: Any) -> Any:
        """Per (end day, column): the rows' `by` summed over the spans that hold the day."""
        cells = (opens[which] - lo) * width + column
        if closes is not None:  # one count of both edges: each grid is tens of MB
            ones = np.ones(len(cells)) if by is None else by
            cells = np.concatenate([cells, (closes[which] - lo) * width + column])
            by = np.concatenate([ones, -ones])
        grid = np.bincount(cells, weights=by, minlength=length * width)
        days = grid.reshape(length, width)
        np.cumsum(days, axis=0, out=days)
        return days[:-1] if whole else days[:-1][wanted]

    count = len(members)
    labels = [str(m) for m in members]
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
    end_days = [EPOCH + timedelta(days=lo + int(e)) for e in np.flatnonzero(wanted)]
    board.rows = list(_rows(span, end_days, top, values, per, labels, names))
    return board


def _rows(
    span: str,
    end_days: list[date],
    top: NDArray[np.int64],
    values: NDArray[np.int64],
    per: list[list[list[int]]],
    labels: list[str],
    names: list[str],
) -> Iterator[str]:
    """COPY text lines; components as the JSON object `jsonb_object_agg` would give."""
    keys = [f'"{name}": ' for name in names]
    for e, (indexes, scores) in enumerate(zip(top.tolist(), values.tolist(), strict=True)):
        head = f"{span}\t{end_days[e]}\t"
        for rank, (index, value) in enumerate(zip(indexes, scores, strict=True)):
            if value <= 0:
                break
            components = ", ".join(
                f"{key}{float(c[e][rank])!r}"
                for key, c in zip(keys, per, strict=True)
                if c[e][rank]
            )
            yield f"{head}{rank + 1}\t{labels[index]}\t{value / SCALE!r}\t{{{components}}}\n"
