"""Community health read from `community_health`: activity series, cohorts and their members.

Every number comes from rows the projection keeps per period; a request reads at most
the periods it answers for (and, for inactive contributors, one small row per earlier
period), never a member's contributions one by one. Definitions: docs/metrics.md.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection

from domain.projections.community_health import (
    ALL_SPACES,
    INACTIVITY_DAYS,
    NAME,
    next_period,
    period_start,
)
from services.queries.cursors import Count, Cursor, decode_cursor, encode_cursor

HEALTH_READS = (NAME,)
"""The projections every health endpoint reads."""

MAX_PERIODS = {"day": 366, "week": 260, "month": 120}
"""The most periods one answer holds: a longer span is a 400 that says so."""
DEFAULT_PERIODS = {"day": 30, "week": 12, "month": 12}
"""Without `since`: this many periods, ending with the one holding `until` (default: today's)."""
OCCASIONAL_MAX = 2
"""Occasional contributors made at most this many contributions in the period (default)."""
ONION = {"core": 80, "regular": 95}
"""Core: the fewest members who made 80% of the period's contributions; regular: up to 95%."""
ABSENCE_SHARE = 50
GROUPS = (
    "contributors",
    "new",
    "returning",
    "occasional",
    "inactive",
    "core",
    "regular",
    "casual",
    "absence",
)


class Span(msgspec.Struct, frozen=True):
    """Periods of one kind: the first one's start, and the start of the one after the last."""

    period: str
    first: date
    end: date

    def starts(self) -> list[date]:
        found, at = [], self.first
        while at < self.end:
            found.append(at)
            at = next_period(self.period, at)
        return found


def span_of(period: str, since: date | None, until: date | None, today: date) -> Span:
    """The periods from the one holding `since` to the one holding the day before `until`.

    Raises ValueError, with the numbers involved, when the span is empty or too long.
    """
    try:
        last_day = (until or next_period("day", today)) - timedelta(days=1)
        end = next_period(period, period_start(period, last_day))
        if since is None:
            first = end
            for _ in range(DEFAULT_PERIODS[period]):
                first = period_start(period, first - timedelta(days=1))
        else:
            first = period_start(period, since)
    except (OverflowError, ValueError):
        raise ValueError(f"since {since} and until {until} are out of range") from None
    if first >= end:
        raise ValueError(f"since ({since}) must come before until ({until})")
    count = len(Span(period, first, end).starts()[: MAX_PERIODS[period] + 1])
    if count > MAX_PERIODS[period]:
        raise ValueError(
            f"since {first} to until {end} spans more than {MAX_PERIODS[period]} {period}s, "
            f"the most one answer holds: ask for a shorter span"
        )
    return Span(period, first, end)


class ActivityPoint(msgspec.Struct, kw_only=True):
    period_start: date
    contributions: int
    introductions: int
    mentions: int
    recognitions_given: int
    active_members: int
    new_members: int


class CohortPoint(msgspec.Struct, kw_only=True):
    period_start: date
    contributions: int
    contributors: int
    new: int
    returning: int
    occasional: int
    inactive: int
    core: int
    regular: int
    casual: int
    absence_factor: int


class CohortMember(msgspec.Struct, kw_only=True):
    member_id: UUID
    contributions: int
    """Contributions in the period (0 for inactive members)."""


class CohortCursor(Cursor, frozen=True):
    """Members of a cohort, most contributing first: how many were listed, and the last one."""

    listed: Count
    contributions: Count
    member_id: UUID


async def as_of(conn: AsyncConnection[Any]) -> int:
    """The position the live read models reflect (0 before any catch-up)."""
    cur = await conn.execute(
        "SELECT coalesce(min(position), 0) FROM projection_builds "
        "WHERE state = 'live' AND name = ANY(%s)",
        [list(HEALTH_READS)],
    )
    found = await cur.fetchone()
    return int(found[0]) if found else 0


async def activity(
    conn: AsyncConnection[Any], span: Span, space: str | None
) -> list[ActivityPoint]:
    """One point per period of the span, zeros where nothing happened."""
    cur = await conn.execute(
        """
        SELECT period_start, contributions, introductions, mentions, recognitions,
               active_members, new_members
        FROM read.health_periods
        WHERE period = %(period)s
          AND space = %(space)s
          AND period_start >= %(first)s
          AND period_start < %(end)s
        """,
        {"period": span.period, "space": space or ALL_SPACES, "first": span.first, "end": span.end},
    )
    found = {row[0]: row[1:] for row in await cur.fetchall()}
    return [
        ActivityPoint(
            period_start=start,
            contributions=c,
            introductions=i,
            mentions=m,
            recognitions_given=r,
            active_members=a,
            new_members=n,
        )
        for start in span.starts()
        for c, i, m, r, a, n in [found.get(start, (0,) * 6)]
    ]


async def cohorts(
    conn: AsyncConnection[Any], span: Span, space: str | None, occasional_max: int
) -> list[CohortPoint]:
    """One point per period of the span; inactive needs every earlier period's small totals."""
    params = {"period": span.period, "space": space or ALL_SPACES, "first": span.first}
    cur = await conn.execute(
        """
        SELECT period_start, new_contributors, spell_starts, recent_change
        FROM read.health_periods
        WHERE period = %(period)s
          AND space = %(space)s
          AND period_start < %(end)s
        ORDER BY period_start
        """,
        {**params, "end": span.end},
    )
    totals = await cur.fetchall()
    histograms = await _histograms(conn, span, space)
    rows, points = iter(totals), []
    known = recent = 0  # running sums over every period up to the current one
    pending = next(rows, None)
    for start in span.starts():
        new = starts = 0
        while pending is not None and pending[0] <= start:
            at, counted_new, counted_starts, recent_change = pending
            known, recent = known + counted_new, recent + recent_change
            if at == start:
                new, starts = counted_new, counted_starts
            pending = next(rows, None)
        histogram = histograms.get(start, [])
        onion = Onion(histogram)
        points.append(
            CohortPoint(
                period_start=start,
                contributions=onion.total,
                contributors=onion.members,
                new=new,
                returning=starts - new,
                occasional=sum(m for count, m in histogram if count <= occasional_max),
                inactive=known - recent,
                core=onion.core,
                regular=onion.regular,
                casual=onion.members - onion.core - onion.regular,
                absence_factor=onion.fewest(ABSENCE_SHARE),
            )
        )
    return points


class Onion:
    """The fewest members who made a share of a period's contributions, from its histogram."""

    def __init__(self, histogram: list[tuple[int, int]]) -> None:
        self.histogram = sorted(histogram, reverse=True)
        self.total = sum(count * members for count, members in histogram)
        self.members = sum(members for _, members in histogram)
        self.core = self.fewest(ONION["core"])
        self.regular = self.fewest(ONION["regular"]) - self.core

    def fewest(self, percent: int) -> int:
        """How many of the most contributing members it takes to reach `percent` of the total."""
        needed, taken, made = percent * self.total, 0, 0
        for count, members in self.histogram:
            if made * 100 >= needed:
                break
            missing = needed - made * 100
            take = min(members, -(-missing // (count * 100)))
            taken, made = taken + take, made + take * count
        return taken

    def ranks(self, group: str) -> tuple[int, int]:
        """The ranks (most contributing first) a group holds: from, up to but not including."""
        return {
            "core": (0, self.core),
            "regular": (self.core, self.core + self.regular),
            "casual": (self.core + self.regular, self.members),
            "absence": (0, self.fewest(ABSENCE_SHARE)),
        }.get(group, (0, self.members))

    def count_at(self, rank: int) -> tuple[int, int]:
        """The contributions of the member at `rank`, and how many made more than that."""
        ahead = 0
        for count, members in self.histogram:
            if ahead + members > rank:
                return count, ahead
            ahead += members
        return 0, ahead


async def _by_first_day(
    conn: AsyncConnection[Any], group: str, params: dict[str, Any], contributors: int
) -> str | None:
    """For new and returning members, the query that finds them fastest, or None when the
    period has none. Found by the day their spell (or first contribution) started, they
    cost one probe each; walked in rank order, up to one per contributor, the new and the
    returning ones, with few contributions, coming last. The first way wins when at most
    half the contributors are candidates."""
    cur = await conn.execute(
        "SELECT new_contributors, spell_starts FROM read.health_periods "
        "WHERE period = %(period)s AND space = %(space)s AND period_start = %(start)s",
        params,
    )
    new, starts = await cur.fetchone() or (0, 0)
    members, candidates = (new, new) if group == "new" else (starts - new, starts)
    if members <= 0:
        return None
    if candidates * 2 > contributors:
        return _RANKED
    return _NEW_BY_FIRST_DAY if group == "new" else _RETURNING_BY_FIRST_DAY


async def _histograms(
    conn: AsyncConnection[Any], span: Span, space: str | None
) -> dict[date, list[tuple[int, int]]]:
    cur = await conn.execute(
        """
        SELECT period_start, contributions, members
        FROM read.health_histogram
        WHERE period = %(period)s
          AND space = %(space)s
          AND period_start >= %(first)s
          AND period_start < %(end)s
        """,
        {"period": span.period, "space": space or ALL_SPACES, "first": span.first, "end": span.end},
    )
    found: dict[date, list[tuple[int, int]]] = {}
    for start, count, members in await cur.fetchall():
        found.setdefault(start, []).append((count, members))
    return found


_FILTERS = {
    "contributors": "",
    "core": "",
    "regular": "",
    "casual": "",
    "absence": "",
    "occasional": "AND mp.contributions <= %(occasional_max)s",
    "new": """
        AND EXISTS (
            SELECT 1 FROM read.health_members m
            WHERE m.member_id = mp.member_id AND m.space = mp.space
              AND m.first_contribution >= %(start)s AND m.first_contribution < %(end)s)""",
    "returning": """
        AND EXISTS (
            SELECT 1 FROM read.health_spells s
            WHERE s.member_id = mp.member_id AND s.space = mp.space
              AND s.first_day >= %(start)s AND s.first_day < %(end)s
              AND EXISTS (
                  SELECT 1 FROM read.health_spells earlier
                  WHERE earlier.member_id = s.member_id AND earlier.space = s.space
                    AND earlier.first_day < s.first_day))""",
}

_RANKED = """
    SELECT mp.member_id, mp.contributions
    FROM read.health_member_periods mp
    WHERE mp.period = %(period)s
      AND mp.space = %(space)s
      AND mp.period_start = %(start)s
      AND mp.contributions > 0
      {where_after}
      {filters}
    ORDER BY mp.contributions DESC, mp.member_id
    LIMIT %(limit)s OFFSET %(offset)s
"""
"""A group's members in rank order; `where_after` and `filters` are this module's
constants, every value goes as a parameter."""

_CONTRIBUTIONS = """(
    SELECT c.contributions FROM read.health_member_periods c
    WHERE c.member_id = {who}.member_id AND c.space = {who}.space
      AND c.period = %(period)s AND c.period_start = %(start)s)"""
"""A member's contributions in the period: a subquery, so that each candidate costs one
probe of the primary key, never a join the planner may choose to make over every member
of the period (the candidates are materialized: the probe is made once, not again for
the filter and the sort)."""

_RANKED_CANDIDATES = """
    WITH mp AS MATERIALIZED ({candidates})
    SELECT mp.member_id, mp.contributions
    FROM mp
    WHERE mp.contributions > 0
      {{where_after}}
    ORDER BY mp.contributions DESC, mp.member_id
    LIMIT %(limit)s OFFSET %(offset)s
"""
"""Candidates, each with its contributions in the period, ranked as `_RANKED` ranks."""

_NEW_BY_FIRST_DAY = _RANKED_CANDIDATES.format(
    candidates=f"""
        SELECT m.member_id, {_CONTRIBUTIONS.format(who="m")} AS contributions
        FROM read.health_members m
        WHERE m.space = %(space)s
          AND m.first_contribution >= %(start)s AND m.first_contribution < %(end)s"""
)
"""The new members of a period found by the day of their first contribution (the index
on space and first_contribution), then ranked: for a period where few are new."""

_RETURNING_BY_FIRST_DAY = _RANKED_CANDIDATES.format(
    candidates=f"""
        SELECT s.member_id, {_CONTRIBUTIONS.format(who="s")} AS contributions
        FROM read.health_spells s
        WHERE s.space = %(space)s
          AND s.first_day >= %(start)s AND s.first_day < %(end)s
          AND (
              SELECT m.first_contribution FROM read.health_members m
              WHERE m.member_id = s.member_id AND m.space = s.space) < %(start)s"""
)
"""The returning members of a period found by the day their spell started (the index on
space and first_day), then ranked: for a period where few spells started. A spell that
starts in a period of a member whose first contribution came before it is a return (two
spells are more than the inactivity interval apart, longer than any period)."""

_INACTIVE = """
    SELECT member_id, 0 AS contributions
    FROM read.health_spells
    WHERE space = %(space)s
      AND first_day < %(end)s
      AND member_id > %(after_member)s
    GROUP BY member_id
    HAVING max(last_day) < %(covered_from)s
    ORDER BY member_id
    LIMIT %(limit)s
"""
"""Inactive at a period's end: no spell that started before the end reaches into the
interval. Read from the index on (space, member_id, first_day) that includes last_day,
in member order: only the space's own spells, never the table."""


def cohort_period_problem(period: str, start: date) -> str | None:
    """Why `start` cannot start a cohort's period, or None: it must start one, and the
    period's end and the inactivity interval before it must lie in the calendar."""
    if period_start(period, start) != start:
        expected = "a Monday" if period == "week" else "the 1st of a month"
        return f"period_start {start} does not start a {period}: {expected} is expected"
    try:
        next_period(period, start) - timedelta(days=INACTIVITY_DAYS)
    except OverflowError:
        return (
            f"period_start {start} is out of range: the {period} it starts and the "
            f"{INACTIVITY_DAYS} days before its end must lie within the years 1 to 9999"
        )
    return None


async def cohort_members(
    conn: AsyncConnection[Any],
    *,
    period: str,
    start: date,
    group: str,
    space: str | None,
    occasional_max: int,
    cursor: str | None,
    limit: int,
) -> tuple[list[CohortMember], str | None]:
    """A page of a cohort's members, most contributing first (inactive ones by id).

    Raises InvalidCursor for a cursor this endpoint did not hand out.
    """
    after = decode_cursor(cursor, CohortCursor) if cursor else None
    end = next_period(period, start)
    params: dict[str, Any] = {
        "period": period,
        "space": space or ALL_SPACES,
        "start": start,
        "end": end,
        "occasional_max": occasional_max,
    }
    listed = after.listed if after else 0
    if group == "inactive":
        params.update(
            after_member=after.member_id if after else UUID(int=0),
            covered_from=end - timedelta(days=INACTIVITY_DAYS),
            limit=limit + 1,
        )
        cur = await conn.execute(_INACTIVE, params)
        rows = await cur.fetchall()
        stop = None
    else:
        histograms = await _histograms(conn, Span(period, start, end), space)
        onion = Onion(histograms.get(start, []))
        first, stop = onion.ranks(group)
        listed = max(listed, first)
        take = min(limit, stop - listed)
        if take <= 0:
            return [], None
        where_after, offset = "", 0
        if after is not None:
            where_after = (
                "AND (mp.contributions < %(after_count)s OR "
                "(mp.contributions = %(after_count)s AND mp.member_id > %(after_member)s))"
            )
            params.update(after_count=after.contributions, after_member=after.member_id)
        elif first > 0:
            # Start at the count the group's first rank holds: only the members tied with
            # it ahead of that rank are skipped, not every more contributing member.
            top, ahead = onion.count_at(first)
            where_after, offset = "AND mp.contributions <= %(top)s", first - ahead
            params.update(top=top)
        params.update(limit=take + 1, offset=offset)
        query: str | None = _RANKED
        if group in ("new", "returning"):
            query = await _by_first_day(conn, group, params, onion.members)
        if query is None:
            return [], None
        cur = await conn.execute(
            query.format(where_after=where_after, filters=_FILTERS[group]),
            params,
        )
        rows = await cur.fetchall()
        limit = take
    page = [CohortMember(member_id=m, contributions=c) for m, c in rows[:limit]]
    more = len(rows) > limit and (stop is None or listed + len(page) < stop)
    next_cursor = (
        encode_cursor(
            CohortCursor(
                listed=listed + len(page),
                contributions=page[-1].contributions,
                member_id=page[-1].member_id,
            )
        )
        if more and page
        else None
    )
    return page, next_cursor
