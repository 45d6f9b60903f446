"""Contribution statistics and leaderboards, summed at query time from the read models."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

GROUPS = {"member": "c.member_id", "kind": "c.kind", "space": "c.space"}
COLUMNS = {"member": "member_id", "kind": "kind", "space": "space"}
PERIODS = ("day", "week", "month")
WINDOWS = {"7d": 7, "30d": 30, "365d": 365, "all": None}
METRICS = (
    "contributions",
    "recognitions_received",
    "recognitions_given",
    "introductions_made",
    "mentions",
    "connections",
)
READS: dict[str, tuple[str, ...]] = {
    "contributions": ("contribution_counts", "member_profiles"),
    "recognitions_received": ("interaction_counts", "member_profiles"),
    "recognitions_given": ("interaction_counts", "member_profiles"),
    "introductions_made": ("interaction_counts", "member_profiles"),
    "mentions": ("interaction_counts", "member_profiles"),
    "connections": ("connections", "member_profiles"),
}
"""The projections each leaderboard reads: a read with min_position waits for all of them."""

Query = tuple[sql.Composed, dict[str, Any]]


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """Whole UTC days: from `first_day` up to, not including, `end_day` (None: unbounded)."""

    first_day: date | None
    end_day: date | None

    def params(self) -> dict[str, Any]:
        return {"first_day": self.first_day, "end_day": self.end_day}


def window_of(name: str, until: str | None, now: datetime) -> Window:
    """The days of a window ending at `until` (a date, exclusive, or a moment; default now).

    A moment counts the whole UTC day it falls in, so `2009-09-01` and
    `2009-09-01T00:00:00Z` end the same window. Raises ValueError for a bad `until`.
    """
    days = WINDOWS[name]
    if until is None and days is None:
        return Window(first_day=None, end_day=None)
    try:
        end_day = _end_day(_moment(until) if until is not None else now)
        first_day = end_day - timedelta(days=days) if days is not None else None
    except OverflowError:
        raise ValueError(f"until {until!r} is out of range for a {name} window") from None
    return Window(first_day=first_day, end_day=end_day)


def _moment(text: str) -> date | datetime:
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"until must be a date (2009-09-01) or a moment (2009-09-01T12:00:00Z), got {text!r}"
        ) from None


def _end_day(until: date | datetime) -> date:
    if not isinstance(until, datetime):
        return until
    at = (until if until.tzinfo else until.replace(tzinfo=UTC)).astimezone(UTC)
    return at.date() if at.time() == datetime.min.time() else at.date() + timedelta(days=1)


STATS_READS = ("contribution_counts", "member_profiles")
"""The projections `contribution_stats` reads."""
LEADERBOARD_READS = tuple(dict.fromkeys(name for names in READS.values() for name in names))
"""The projections the leaderboards read, all metrics together; a read waits for its metric's."""


class StatRow(msgspec.Struct, kw_only=True, omit_defaults=True):
    period_start: date | None = None
    member_id: UUID | None = None
    display_name: str | None = None
    kind: str | None = None
    space: str | None = None
    count: int


class LeaderboardEntry(msgspec.Struct, kw_only=True):
    rank: int
    member_id: UUID
    display_name: str
    value: int


MEMBER_ROWS = "read.contribution_counts"
DAY_TOTALS = "read.contribution_day_totals"
"""Where contribution statistics are summed from: by member, or over members by day."""


async def contribution_stats(
    conn: AsyncConnection[Any],
    *,
    group_by: list[str],
    period: str | None,
    since: date | None,
    until: date | None,
    filters: dict[str, str | UUID],
    limit: int,
    by_member: bool = False,
) -> list[StatRow]:
    """Counts by any of member, kind and space, per day, week or month (ISO weeks, UTC).

    Statistics that neither group by nor filter on a member sum the per-day totals over
    members (thousands of rows for a year of a large community) rather than every
    member's rows (one per member, kind, space and day; docs/performance.md has both
    timed); `by_member` forces the latter, for the benchmark that compares.
    Right after an upgrade the live build may predate the totals (projection version 2):
    until its rebuild goes live, the members' rows answer instead."""
    keys: list[sql.Composable] = [sql.SQL(GROUPS[g]) for g in group_by]
    names = [COLUMNS[g] for g in group_by]
    if period:
        keys.insert(0, sql.SQL("date_trunc({}, c.day)::date").format(sql.Literal(period)))
        names.insert(0, "period_start")
    selected = [
        sql.SQL("{} AS {}").format(k, sql.Identifier(n)) for k, n in zip(keys, names, strict=True)
    ]
    where: list[sql.Composable] = [sql.SQL("true")]
    params: dict[str, Any] = {"limit": limit}
    if since:
        where.append(sql.SQL("c.day >= %(since)s"))
        params["since"] = since
    if until:
        where.append(sql.SQL("c.day < %(until)s"))
        params["until"] = until
    for name, value in filters.items():
        where.append(sql.SQL("{} = %({})s").format(sql.SQL(GROUPS[name]), sql.SQL(name)))
        params[name] = value
    display = sql.SQL("")
    if "member" in group_by:
        display = sql.SQL(
            ", (SELECT p.display_name FROM read.member_profiles p "
            "WHERE p.member_id = c.member_id) AS display_name"
        )
    grouping = sql.SQL(" GROUP BY {}").format(sql.SQL(", ").join(keys)) if keys else sql.SQL("")
    order = (
        sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(sql.Identifier(n) for n in names))
        if names
        else sql.SQL("")
    )

    async def summed(table: str) -> list[StatRow]:
        query = sql.SQL(
            "SELECT {selected} sum(c.count)::bigint AS count {display} "
            "FROM {table} c WHERE {where}{grouping} "
            "HAVING sum(c.count) <> 0{order} LIMIT %(limit)s"
        ).format(
            selected=sql.SQL(", ").join(selected) + (sql.SQL(",") if selected else sql.SQL("")),
            display=display,
            table=sql.SQL(table),
            where=sql.SQL(" AND ").join(where),
            grouping=grouping,
            order=order,
        )
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(query, params)
        return [msgspec.convert(row, StatRow) for row in await cur.fetchall()]

    if by_member or "member" in group_by or "member" in filters:
        return await summed(MEMBER_ROWS)
    try:
        return await summed(DAY_TOTALS)
    except psycopg.errors.UndefinedTable:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            raise  # inside a transaction the failed read aborted it: not ours to mend
        return await summed(MEMBER_ROWS)


async def leaderboard(
    conn: AsyncConnection[Any], metric: str, window: Window, limit: int
) -> list[LeaderboardEntry]:
    """Top members by `metric` over the window's days, summed from the read models."""
    query, params = _LEADERBOARDS[metric](window)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, {**params, "limit": limit})
    rows = await cur.fetchall()
    return [
        LeaderboardEntry(
            rank=i + 1,
            member_id=row["member_id"],
            display_name=row["display_name"] or "",
            value=int(row["value"]),
        )
        for i, row in enumerate(rows)
    ]


def _ranked(inner: sql.Composable) -> sql.Composed:
    return sql.SQL("""
        SELECT s.member_id, p.display_name, s.value
        FROM ({}) s
        JOIN read.member_profiles p ON p.member_id = s.member_id AND p.merged_into IS NULL
        WHERE s.value > 0
        ORDER BY s.value DESC, s.member_id
        LIMIT %(limit)s
    """).format(inner)


def _days(window: Window, column: str) -> sql.Composed:
    """The window as a condition on a `date` column: its first day to the day after its last."""
    where: list[sql.Composable] = [sql.SQL("true")]
    if window.first_day is not None:
        where.append(sql.SQL("{} >= %(first_day)s").format(sql.Identifier(column)))
    if window.end_day is not None:
        where.append(sql.SQL("{} < %(end_day)s").format(sql.Identifier(column)))
    return sql.SQL(" AND ").join(where)


def _contributions(window: Window) -> Query:
    inner = sql.SQL(
        "SELECT member_id, sum(count) AS value FROM read.contribution_counts "
        "WHERE {} GROUP BY member_id"
    ).format(_days(window, "day"))
    return _ranked(inner), window.params()


def _interactions(fact: str) -> Callable[[Window], Query]:
    """A fact of interaction_counts summed over the window's days."""

    def build(window: Window) -> Query:
        inner = sql.SQL(
            "SELECT member_id, sum(count) AS value FROM read.interaction_counts "
            "WHERE fact = %(fact)s AND {} GROUP BY member_id"
        ).format(_days(window, "day"))
        return _ranked(inner), {**window.params(), "fact": fact}

    return build


def _connections(window: Window) -> Query:
    """Pairs whose latest interaction falls in the window (the model keeps only the latest)."""
    where: list[sql.Composable] = [sql.SQL("true")]
    if window.first_day is not None:
        where.append(sql.SQL("last_at >= %(first_day)s::timestamp AT TIME ZONE 'UTC'"))
    if window.end_day is not None:
        where.append(sql.SQL("last_at < %(end_day)s::timestamp AT TIME ZONE 'UTC'"))
    inner = sql.SQL("""
        SELECT member_id, count(*) AS value FROM (
            SELECT member_a AS member_id FROM read.connections WHERE {within}
            UNION ALL
            SELECT member_b FROM read.connections WHERE {within}
        ) pairs GROUP BY member_id
    """).format(within=sql.SQL(" AND ").join(where))
    return _ranked(inner), window.params()


_LEADERBOARDS: dict[str, Callable[[Window], Query]] = {
    "contributions": _contributions,
    "recognitions_received": _interactions("recognitions_received"),
    "recognitions_given": _interactions("recognitions_given"),
    "introductions_made": _interactions("introductions_made"),
    "mentions": _interactions("mentions_received"),
    "connections": _connections,
}
