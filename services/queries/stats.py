"""Contribution statistics and leaderboards, summed at query time from the read models."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql
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
    "connections",
)


STATS_READS = ("contribution_counts", "member_profiles")
"""The projections `contribution_stats` reads."""
LEADERBOARD_READS = ("contribution_counts", "member_profiles", "connections")
"""The projections the leaderboards read, all metrics together."""


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


async def contribution_stats(
    conn: AsyncConnection[Any],
    *,
    group_by: list[str],
    period: str | None,
    since: date | None,
    until: date | None,
    filters: dict[str, str | UUID],
    limit: int,
) -> list[StatRow]:
    """Counts by any of member, kind and space, per day, week or month (ISO weeks, UTC)."""
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
    query = sql.SQL(
        "SELECT {selected} sum(c.count)::bigint AS count {display} "
        "FROM read.contribution_counts c WHERE {where}{grouping} "
        "HAVING sum(c.count) <> 0{order} LIMIT %(limit)s"
    ).format(
        selected=sql.SQL(", ").join(selected) + (sql.SQL(",") if selected else sql.SQL("")),
        display=display,
        where=sql.SQL(" AND ").join(where),
        grouping=grouping,
        order=order,
    )
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, params)
    return [msgspec.convert(row, StatRow) for row in await cur.fetchall()]


async def leaderboard(
    conn: AsyncConnection[Any], metric: str, window: str, limit: int
) -> list[LeaderboardEntry]:
    days = WINDOWS[window]
    since = date.today() - timedelta(days=days) if days else None
    query = _LEADERBOARDS[metric](since is not None)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, {"since": since, "limit": limit})
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


def _ranked(inner: str) -> str:
    return f"""
        SELECT s.member_id, p.display_name, s.value
        FROM ({inner}) s
        JOIN read.member_profiles p ON p.member_id = s.member_id AND p.merged_into IS NULL
        WHERE s.value > 0
        ORDER BY s.value DESC, s.member_id
        LIMIT %(limit)s
    """


def _contributions(windowed: bool) -> str:
    since = "WHERE day >= %(since)s" if windowed else ""
    return _ranked(
        f"SELECT member_id, sum(count) AS value FROM read.contribution_counts "
        f"{since} GROUP BY member_id"
    )


def _profile_total(column: str, event_type: str, member_field: str, undo: str | None) -> Any:
    """All-time totals come from profiles; windows count the ledger's events of the window."""

    def build(windowed: bool) -> str:
        if not windowed:
            return _ranked(f"SELECT member_id, {column} AS value FROM read.member_profiles")
        undone = ""
        if undo:
            undone = (
                f" - (SELECT count(*) FROM events w WHERE w.type = '{undo}' "
                f"AND w.occurred_at >= %(since)s AND w.data->>'{member_field}' = "
                f"e.data->>'{member_field}')"
            )
        return _ranked(
            f"SELECT (e.data->>'{member_field}')::uuid AS member_id, count(*){undone} AS value "
            f"FROM events e WHERE e.type = '{event_type}' AND e.occurred_at >= %(since)s "
            f"GROUP BY e.data->>'{member_field}'"
        )

    return build


def _connections(windowed: bool) -> str:
    since = "WHERE last_at >= %(since)s" if windowed else ""
    return _ranked(f"""
        SELECT member_id, count(*) AS value FROM (
            SELECT member_a AS member_id FROM read.connections {since}
            UNION ALL
            SELECT member_b FROM read.connections {since}
        ) pairs GROUP BY member_id
    """)


_LEADERBOARDS = {
    "contributions": _contributions,
    "recognitions_received": _profile_total(
        "recognitions_received", "RecognitionGiven", "to_id", "RecognitionWithdrawn"
    ),
    "recognitions_given": _profile_total(
        "recognitions_given", "RecognitionGiven", "from_id", "RecognitionWithdrawn"
    ),
    "introductions_made": _profile_total(
        "introductions_made", "IntroductionMade", "introducer_id", None
    ),
    "connections": _connections,
}
