"""Reads of member profiles and connections, from the live read models (schema `read`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from domain.projections import member_profiles as mp
from services.queries.cursors import ActivityCursor, CountCursor, decode_cursor, encode_cursor


class MemberOut(msgspec.Struct, kw_only=True):
    id: UUID
    display_name: str
    handles: list[str]
    joined_at: datetime | None
    bio: str
    links: list[str]
    status: str
    """newcomer, regular, occasional or inactive (see docs/projections.md)"""
    first_active_at: datetime | None
    last_active_at: datetime | None
    contributions_total: int
    contributions_by_kind: dict[str, int]
    introductions_made: int
    introductions_received: int
    mentions_given: int
    mentions_received: int
    recognitions_given: int
    recognitions_received: int
    connections: int
    """How many distinct members this one is connected to."""
    merged_into: UUID | None
    forgotten: bool


class ConnectionOut(msgspec.Struct, kw_only=True):
    member_id: UUID
    display_name: str
    weight: int
    introduced_together: int
    introduced: int
    mentioned: int
    recognised: int
    last_at: datetime | None


# The one status rule (docs/projections.md). It lives in SQL, not in the profile fold:
# status depends on the clock, so a stored one would go stale, and lists filter, sort and
# paginate on it, which Python could only do after fetching every profile. `now` is a
# parameter (the database's clock when None) so the rule is tested at its boundaries.
STATUS = f"""
    CASE
        WHEN p.last_active_at IS NULL
          OR p.last_active_at
             < coalesce(%(now)s::timestamptz, now()) - interval '{mp.ACTIVE_DAYS} days'
            THEN 'inactive'
        WHEN p.first_active_at
             >= coalesce(%(now)s::timestamptz, now()) - interval '{mp.NEWCOMER_DAYS} days'
            THEN 'newcomer'
        WHEN (SELECT coalesce(sum(c.count), 0) FROM read.contribution_counts c
              WHERE c.member_id = p.member_id
                AND c.day >= (coalesce(%(now)s::timestamptz, now()) AT TIME ZONE 'UTC')::date
                             - {mp.ACTIVE_DAYS}) >= {mp.REGULAR_CONTRIBUTIONS}
            THEN 'regular'
        ELSE 'occasional'
    END
"""

PROFILE_READS = ("member_profiles", "contribution_counts", "connections")
"""The projections `profile` and `list_members` read (STATUS and PROFILE below)."""

PROFILE = f"""
    SELECT p.member_id AS id, p.display_name, p.handles, p.joined_at, p.bio, p.links,
           {STATUS} AS status,
           p.first_active_at, p.last_active_at, p.contributions_total,
           p.contributions_by_kind, p.introductions_made, p.introductions_received,
           p.mentions_given, p.mentions_received, p.recognitions_given,
           p.recognitions_received,
           (SELECT count(*) FROM read.connections k
            WHERE k.member_a = p.member_id OR k.member_b = p.member_id) AS connections,
           p.merged_into, p.forgotten
    FROM read.member_profiles p
"""

SORTS = {
    "activity": "coalesce(p.last_active_at, '-infinity'::timestamptz)",
    "contributions": "p.contributions_total",
    "recognitions": "p.recognitions_received",
    "introductions": "p.introductions_made",
}


async def profile(
    conn: AsyncConnection[Any], member_id: UUID, now: datetime | None = None
) -> MemberOut | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(PROFILE + " WHERE p.member_id = %(id)s", {"id": member_id, "now": now})
    row = await cur.fetchone()
    return msgspec.convert(row, MemberOut) if row else None


async def list_members(
    conn: AsyncConnection[Any],
    *,
    q: str | None,
    status: str | None,
    sort: str,
    cursor: str | None,
    limit: int,
    now: datetime | None = None,
) -> tuple[list[MemberOut], str | None]:
    """One page, ordered by `sort` (descending) then id; the cursor is opaque to callers."""
    order = SORTS[sort]
    where = ["p.merged_into IS NULL"]
    params: dict[str, Any] = {"limit": limit + 1, "now": now}
    if q:
        where.append(
            "(p.display_name ILIKE %(like)s OR EXISTS (SELECT 1 FROM "
            "unnest(p.handles) h WHERE h ILIKE %(like)s))"
        )
        params["like"] = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if status:
        where.append(f"({STATUS}) = %(status)s")
        params["status"] = status
    if cursor:
        value, after_id = _after(sort, cursor)
        where.append(f"({order}, p.member_id) < (%(value)s, %(after_id)s::uuid)")
        params |= {"value": value, "after_id": after_id}
    query = (
        f"{PROFILE} WHERE {' AND '.join(where)} "
        f"ORDER BY {order} DESC, p.member_id DESC LIMIT %(limit)s"
    )
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, params)
    rows = await cur.fetchall()
    members = [msgspec.convert(row, MemberOut) for row in rows[:limit]]
    if len(rows) <= limit:
        return members, None
    last = members[-1]
    return members, encode_cursor(_cursor_of(sort, last))


CONNECTIONS_READS = ("connections", "member_profiles")
"""The projections `connections` reads."""


def connections_cursor(cursor: str) -> CountCursor:
    """Where a page of connections resumes; InvalidCursor before any query if forged."""
    return decode_cursor(cursor, CountCursor)


async def connections(
    conn: AsyncConnection[Any], member_id: UUID, limit: int, cursor: CountCursor | None
) -> tuple[list[ConnectionOut], str | None]:
    params: dict[str, Any] = {"member": member_id, "limit": limit + 1}
    after = ""
    if cursor:
        weight, other = cursor.count, cursor.member_id
        after = "WHERE (k.weight, k.other) < (%(weight)s, %(other)s::uuid)"
        params |= {"weight": weight, "other": other}
    query = f"""
        SELECT k.other AS member_id, coalesce(p.display_name, '') AS display_name, k.weight,
               k.introduced_together, k.introduced, k.mentioned, k.recognised, k.last_at
        FROM (
            SELECT member_b AS other, * FROM read.connections WHERE member_a = %(member)s
            UNION ALL
            SELECT member_a AS other, * FROM read.connections WHERE member_b = %(member)s
        ) k
        LEFT JOIN read.member_profiles p ON p.member_id = k.other
        {after}
        ORDER BY k.weight DESC, k.other DESC
        LIMIT %(limit)s
    """
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query, params)
    rows = await cur.fetchall()
    found = [msgspec.convert(row, ConnectionOut) for row in rows[:limit]]
    if len(rows) <= limit:
        return found, None
    return found, encode_cursor(CountCursor(count=found[-1].weight, member_id=found[-1].member_id))


def _cursor_of(sort: str, member: MemberOut) -> ActivityCursor | CountCursor:
    if sort == "activity":
        return ActivityCursor(last_active_at=member.last_active_at, member_id=member.id)
    count = {
        "contributions": member.contributions_total,
        "recognitions": member.recognitions_received,
        "introductions": member.introductions_made,
    }[sort]
    return CountCursor(count=count, member_id=member.id)


def _after(sort: str, cursor: str) -> tuple[Any, UUID]:
    """The sort value and id a page resumes after, as SQL compares them (`SORTS`)."""
    if sort == "activity":
        active = decode_cursor(cursor, ActivityCursor)
        at = active.last_active_at
        return (at.isoformat() if at else "-infinity"), active.member_id
    counted = decode_cursor(cursor, CountCursor)
    return counted.count, counted.member_id
