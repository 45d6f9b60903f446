"""Community health: activity over time, and CHAOSS contributor cohorts with their members.

Definitions and their CHAOSS metrics: docs/metrics.md. Every answer says the ledger
position the read model reflects (`as_of_position`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from psycopg_pool import AsyncConnectionPool

from domain import limits as lim
from domain.projections.community_health import INACTIVITY_DAYS
from domain.projections.community_health import period_start as period_start_of
from services.api.auth import SECURITY, require
from services.api.consistency import MinPosition, consistent, reads
from services.queries import health as q
from services.queries.cursors import InvalidCursor

Space = Annotated[
    str | None,
    Parameter(
        max_length=lim.MAX_SPACE,
        pattern=lim.SPACE_PATTERN,
        description="Only this space; default: every space together",
    ),
]
Since = Annotated[
    date | None,
    Parameter(description="A day in the first period; default: a span ending with `until`"),
]
Until = Annotated[
    date | None,
    Parameter(description="The day after the last one counted; default: tomorrow (UTC)"),
]
OccasionalMax = Annotated[
    int,
    Parameter(
        ge=1,
        le=1_000,
        description="Occasional contributors made at most this many contributions in the period",
    ),
]


class Activity(msgspec.Struct, kw_only=True):
    period: str
    space: str | None
    as_of_position: int
    """The ledger position the read model had reached when read: the counts reflect at
    least this one (checkpoints only move forward)."""
    periods: list[q.ActivityPoint]


class Cohorts(msgspec.Struct, kw_only=True):
    period: str
    space: str | None
    inactivity_days: int
    occasional_max: int
    as_of_position: int
    """The ledger position the read model had reached when read: the counts reflect at
    least this one (checkpoints only move forward)."""
    periods: list[q.CohortPoint]


class CohortMembers(msgspec.Struct, kw_only=True):
    period: str
    period_start: date
    group: str
    space: str | None
    as_of_position: int
    members: list[q.CohortMember]
    next_cursor: str | None


class HealthController(Controller):
    guards = [require("read")]
    security = SECURITY
    tags = ["statistics"]

    @get(
        "/v1/stats/activity",
        operation_id="ActivityOverTime",
        summary="Contributions, interactions, active and new members per period",
        opt=reads(q.HEALTH_READS),
    )
    async def activity(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        period: Literal["day", "week", "month"] = "week",
        space: Space = None,
        since: Since = None,
        until: Until = None,
        min_position: MinPosition = None,
    ) -> Activity:
        """One point per period (UTC days, ISO weeks, months), zeros included, for a chart.
        At most 366 days, 260 weeks or 120 months per answer."""
        span = _span(period, since, until)
        await consistent(request, min_position)
        async with pool.connection() as conn:
            position = await q.as_of(conn)
            points = await q.activity(conn, span, space)
        return Activity(period=period, space=space, as_of_position=position, periods=points)

    @get(
        "/v1/stats/cohorts",
        operation_id="ContributorCohorts",
        summary="New, returning, occasional and inactive contributors, and the onion, per period",
        opt=reads(q.HEALTH_READS),
    )
    async def cohorts(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        period: Literal["week", "month"] = "month",
        space: Space = None,
        since: Since = None,
        until: Until = None,
        occasional_max: OccasionalMax = q.OCCASIONAL_MAX,
        min_position: MinPosition = None,
    ) -> Cohorts:
        """CHAOSS contributor metrics per ISO week or month (definitions in docs/metrics.md);
        each count's members: GET /v1/stats/cohorts/members."""
        span = _span(period, since, until)
        await consistent(request, min_position)
        async with pool.connection() as conn:
            position = await q.as_of(conn)
            points = await q.cohorts(conn, span, space, occasional_max)
        return Cohorts(
            period=period,
            space=space,
            inactivity_days=INACTIVITY_DAYS,
            occasional_max=occasional_max,
            as_of_position=position,
            periods=points,
        )

    @get(
        "/v1/stats/cohorts/members",
        operation_id="CohortMembers",
        summary="The members behind one count of /v1/stats/cohorts, a page at a time",
        opt=reads(q.HEALTH_READS),
    )
    async def cohort_members(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        group: Annotated[
            str,
            Parameter(
                description="Which count: " + ", ".join(q.GROUPS) + " (absence: the members "
                "behind the contributor absence factor)",
                schema_extra={"enum": list(q.GROUPS)},
            ),
        ] = "contributors",
        period_start: Annotated[
            date | None,
            Parameter(
                description="The period's first day: a Monday, or a month's 1st; "
                "default: the current period's"
            ),
        ] = None,
        period: Literal["week", "month"] = "month",
        space: Space = None,
        occasional_max: OccasionalMax = q.OCCASIONAL_MAX,
        cursor: Annotated[str | None, Parameter(max_length=500)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        min_position: MinPosition = None,
    ) -> CohortMembers:
        """Most contributing first (inactive members, who made none, by id)."""
        if group not in q.GROUPS:
            raise ValidationException(f"group must be one of {', '.join(q.GROUPS)}")
        if period_start is None:
            period_start = period_start_of(period, datetime.now(UTC).date())
        problem = q.cohort_period_problem(period, period_start)
        if problem is not None:
            raise ValidationException(problem)
        await consistent(request, min_position)
        try:
            async with pool.connection() as conn:
                position = await q.as_of(conn)
                found, next_cursor = await q.cohort_members(
                    conn,
                    period=period,
                    start=period_start,
                    group=group,
                    space=space,
                    occasional_max=occasional_max,
                    cursor=cursor,
                    limit=limit,
                )
        except InvalidCursor as error:
            raise ValidationException(
                f"cursor: {error}",
                extra=[{"key": "cursor", "source": "query", "message": str(error)}],
            ) from error
        return CohortMembers(
            period=period,
            period_start=period_start,
            group=group,
            space=space,
            as_of_position=position,
            members=found,
            next_cursor=next_cursor,
        )


def _span(period: str, since: date | None, until: date | None) -> q.Span:
    try:
        return q.span_of(period, since, until, datetime.now(UTC).date())
    except ValueError as error:
        raise ValidationException(str(error)) from error
