"""Reads of introductions and the pairs they made, with each one's status at `as_of`.

Status is never stored: it depends on the moment asked about and on the window, so it is
computed here by the rule of `domain.projections.introductions.status`, said again in SQL
(`PAIR_STATUS`) so that lists and counts filter and count on it. Every read runs in one
repeatable-read snapshot with the projection's checkpoint, so `as_of_position` is exactly
the ledger position the rows reflect.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from domain.limits import MAX_POSITION
from domain.projections import introductions as fold
from services.queries.cursors import IntroductionCursor, decode_cursor, encode_cursor

READS = (fold.NAME,)
"""The projection every query here reads."""
MEMBER_READS = (fold.NAME, "member_profiles")
"""A member's introductions: theirs, once `member_known`."""

Status = Literal["took", "pending", "lapsed"]


class Evidence(msgspec.Struct, kw_only=True):
    """The first direct contact of the two after the introduction."""

    kind: str
    """mention, recognition, reply or introduction"""
    id: UUID
    """The mention, recognition, replying contribution or onward introduction"""
    event_id: UUID | None
    position: int
    occurred_at: datetime


class PairOut(msgspec.Struct, kw_only=True):
    member_a: UUID
    member_b: UUID
    status: Status
    evidence: Evidence | None
    """Null until the two met (by `as_of`); present on a lapsed pair that met too late."""


class IntroductionOut(msgspec.Struct, kw_only=True):
    id: UUID
    position: int
    event_id: UUID | None
    introducer_id: UUID
    introduced_ids: list[UUID]
    introduced_at: datetime
    status: Status
    """took when one pair took; else pending while the window is open, then lapsed."""
    pairs_total: int
    pairs_took: int


class IntroductionDetail(IntroductionOut, kw_only=True):
    pairs: list[PairOut]


class AsOf(msgspec.Struct, kw_only=True):
    as_of: datetime
    window_days: int
    as_of_position: int
    """The ledger position the introductions read model had reached for this answer."""


class Outcomes(AsOf, kw_only=True):
    """A member's introductions (as introducer) by status at `as_of`."""

    made: int
    took: int
    lapsed: int
    pending: int
    take_rate: float | None
    """took / (took + lapsed); null while none took or lapsed."""


# The rule of fold.status: took if they met within the window and by as_of; lapsed once
# the window closed before as_of; pending otherwise. `first_at` is a pair's evidence_at,
# or an introduction's earliest (its pairs share one moment, so the earliest decides).
STATUS = """
    CASE
        WHEN {first_at} <= least({at} + %(window)s::interval, %(as_of)s::timestamptz)
            THEN 'took'
        WHEN %(as_of)s::timestamptz > {at} + %(window)s::interval
            THEN 'lapsed'
        ELSE 'pending'
    END
"""
PAIR_STATUS = STATUS.format(first_at="p.evidence_at", at="p.introduced_at")
INTRODUCTION_STATUS = STATUS.format(first_at="f.first_at", at="i.introduced_at")

CHECKPOINT = """
    SELECT position
    FROM projection_builds
    WHERE name = %(name)s
      AND state = 'live'
"""

INTRODUCTION = f"""
    SELECT i.introduction_id AS id, i.position, i.event_id, i.introducer_id,
           i.introduced_ids, i.introduced_at,
           {INTRODUCTION_STATUS} AS status,
           f.pairs_total, f.pairs_took
    FROM read.introductions i
    CROSS JOIN LATERAL (
        SELECT min(p.evidence_at) AS first_at,
               count(*) AS pairs_total,
               count(*) FILTER (WHERE ({PAIR_STATUS}) = 'took') AS pairs_took
        FROM read.introduction_pairs p
        WHERE p.introduction_id = i.introduction_id
    ) f
"""

PAIRS = f"""
    SELECT p.member_a, p.member_b, {PAIR_STATUS} AS status,
           p.evidence_kind, p.evidence_id, p.evidence_event_id, p.evidence_position,
           p.evidence_at
    FROM read.introduction_pairs p
    WHERE p.introduction_id = %(id)s
    ORDER BY p.member_a, p.member_b
"""

# Newest first, through the roles' primary key (member, role, position): a page is an
# index range whatever the member's count.
BY_MEMBER = f"""
    {INTRODUCTION}
    JOIN read.introduction_roles r ON r.introduction_id = i.introduction_id
    WHERE r.member_id = %(member)s
      AND r.role = %(role)s
      AND r.position <= %(through)s
      AND i.introduced_at <= %(as_of)s::timestamptz
    ORDER BY r.position DESC
    LIMIT %(limit)s
"""

OUTCOMES = f"""
    SELECT count(*) AS made,
           count(*) FILTER (WHERE s.status = 'took') AS took,
           count(*) FILTER (WHERE s.status = 'lapsed') AS lapsed,
           count(*) FILTER (WHERE s.status = 'pending') AS pending
    FROM (
        SELECT {INTRODUCTION_STATUS} AS status
        FROM read.introduction_roles r
        JOIN read.introductions i ON i.introduction_id = r.introduction_id
        CROSS JOIN LATERAL (
            SELECT min(p.evidence_at) AS first_at
            FROM read.introduction_pairs p
            WHERE p.introduction_id = i.introduction_id
        ) f
        WHERE r.member_id = %(member)s
          AND r.role = 'introducer'
          AND i.introduced_at <= %(as_of)s::timestamptz
    ) s
"""


async def member_known(conn: AsyncConnection[Any], member_id: UUID) -> bool:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM read.member_profiles WHERE member_id = %s)", [member_id]
    )
    row = await cur.fetchone()
    return bool(row and row[0])


def page_cursor(cursor: str) -> IntroductionCursor:
    """Where a page resumes; InvalidCursor before any query if forged."""
    return decode_cursor(cursor, IntroductionCursor)


async def snapshot(conn: AsyncConnection[Any], as_of: datetime, window: timedelta) -> AsOf:
    """Begin the answer's snapshot (call first, inside a transaction) and say what it is of."""
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    cur = await conn.execute(CHECKPOINT, {"name": fold.NAME})
    row = await cur.fetchone()
    return AsOf(as_of=as_of, window_days=window.days, as_of_position=row[0] if row else 0)


async def introduction(
    conn: AsyncConnection[Any], introduction_id: UUID, as_of: datetime, window: timedelta
) -> IntroductionDetail | None:
    params = {"id": introduction_id, "as_of": as_of, "window": window}
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(INTRODUCTION + " WHERE i.introduction_id = %(id)s", params)
    found = await cur.fetchone()
    if found is None:
        return None
    await cur.execute(PAIRS, params)
    pairs = [_pair(row, as_of) for row in await cur.fetchall()]
    return msgspec.convert({**found, "pairs": pairs}, IntroductionDetail)


async def of_member(
    conn: AsyncConnection[Any],
    member_id: UUID,
    role: str,
    as_of: datetime,
    window: timedelta,
    limit: int,
    cursor: IntroductionCursor | None,
) -> tuple[list[IntroductionOut], str | None]:
    params = {
        "member": member_id,
        "role": role,
        "through": cursor.position - 1 if cursor else MAX_POSITION,
        "as_of": as_of,
        "window": window,
        "limit": limit + 1,
    }
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(BY_MEMBER, params)
    rows = await cur.fetchall()
    found = [msgspec.convert(row, IntroductionOut) for row in rows[:limit]]
    if len(rows) <= limit:
        return found, None
    return found, encode_cursor(IntroductionCursor(position=found[-1].position))


async def outcomes(
    conn: AsyncConnection[Any], member_id: UUID, at: AsOf, window: timedelta
) -> Outcomes:
    """Counts at `at` (what `snapshot` answered, with the window it was given)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(OUTCOMES, {"member": member_id, "as_of": at.as_of, "window": window})
    row = await cur.fetchone()
    assert row is not None  # an aggregate always answers one row
    decided = row["took"] + row["lapsed"]
    return Outcomes(
        **msgspec.structs.asdict(at), **row, take_rate=row["took"] / decided if decided else None
    )


def _pair(row: dict[str, Any], as_of: datetime) -> PairOut:
    at = row["evidence_at"]
    evidence = None
    if at is not None and at <= as_of:
        evidence = Evidence(
            kind=row["evidence_kind"],
            id=row["evidence_id"],
            event_id=row["evidence_event_id"],
            position=row["evidence_position"],
            occurred_at=at,
        )
    return PairOut(
        member_a=row["member_a"], member_b=row["member_b"], status=row["status"], evidence=evidence
    )
