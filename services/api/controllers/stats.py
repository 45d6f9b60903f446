"""Statistics and leaderboards, read from the projections that count."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter
from psycopg_pool import AsyncConnectionPool

from services.api.auth import SECURITY, require
from services.api.consistency import MinPosition, consistent, reads
from services.queries import stats


class Stats(msgspec.Struct, kw_only=True):
    group_by: list[str]
    period: str | None
    rows: list[stats.StatRow]


class Leaderboard(msgspec.Struct, kw_only=True):
    metric: str
    window: str
    since: date | None
    """The first day counted (UTC); null for window=all."""
    until: date | None
    """The day after the last counted; null for window=all without `until`."""
    entries: list[stats.LeaderboardEntry]


class StatsController(Controller):
    guards = [require("read")]
    security = SECURITY
    tags = ["statistics"]

    @get(
        "/v1/stats/contributions",
        operation_id="ContributionStats",
        summary="Contribution counts by member, kind, space and period",
        opt=reads(stats.STATS_READS),
    )
    async def contributions(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        group_by: Annotated[
            list[Literal["member", "kind", "space"]] | None,
            Parameter(description="Any of member, kind, space"),
        ] = None,
        period: Literal["day", "week", "month"] | None = None,
        since: Annotated[date | None, Parameter(description="First day counted (UTC)")] = None,
        until: Annotated[date | None, Parameter(description="Day after the last counted")] = None,
        member: UUID | None = None,
        kind: Annotated[str | None, Parameter(max_length=64)] = None,
        space: Annotated[str | None, Parameter(max_length=100)] = None,
        limit: Annotated[int, Parameter(ge=1, le=10_000)] = 1_000,
        min_position: MinPosition = None,
    ) -> Stats:
        """Sums of contributions (retractions excluded) by the dimensions you group by."""
        await consistent(request, min_position)
        groups: list[str] = list(dict.fromkeys(group_by or []))
        filters: dict[str, str | UUID] = {
            k: v for k, v in (("member", member), ("kind", kind), ("space", space)) if v is not None
        }
        async with pool.connection() as conn:
            rows = await stats.contribution_stats(
                conn,
                group_by=groups,
                period=period,
                since=since,
                until=until,
                filters=filters,
                limit=limit,
            )
        return Stats(group_by=groups, period=period, rows=rows)

    @get(
        "/v1/leaderboards/{metric:str}",
        operation_id="Leaderboard",
        summary="Top members by a metric over a window",
        opt=reads(stats.LEADERBOARD_READS),
    )
    async def leaderboard(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        metric: Annotated[
            str,
            Parameter(
                description="What members are ranked by; `mentions` counts times mentioned",
                schema_extra={"enum": list(stats.METRICS)},
            ),
        ],
        window: Literal["7d", "30d", "365d", "all"] = "30d",
        until: Annotated[
            str | None,
            Parameter(
                max_length=40,
                description="End of the window: a day (not counted, as in stats) or a moment "
                "(its whole UTC day counted); default now. `2009-09-01` ranks August 2009 "
                "with window=30d",
            ),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=100)] = 10,
        min_position: MinPosition = None,
    ) -> Leaderboard:
        """Metrics: contributions, recognitions_received, recognitions_given,
        introductions_made, mentions, connections. Windows are whole UTC days."""
        if metric not in stats.METRICS:
            raise NotFoundException(
                f"no leaderboard {metric!r}; there are: " + ", ".join(stats.METRICS)
            )
        try:
            days = stats.window_of(window, until, datetime.now(UTC))
        except ValueError as error:
            raise ValidationException(str(error)) from error
        await consistent(request, min_position, stats.READS[metric])
        async with pool.connection() as conn:
            entries = await stats.leaderboard(conn, metric, days, limit)
        return Leaderboard(
            metric=metric,
            window=window,
            since=days.first_day,
            until=days.end_day,
            entries=entries,
        )
