"""Read endpoints: members, their history and connections, statistics and leaderboards.

Reads of projections accept `min_position` (or the `Ledger-Min-Position` header) and
wait, bounded, until the projections they read have caught up to it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter

from domain.errors import LedgerError
from domain.handles import parse_handle
from domain.streams import member_stream, member_tag
from services.api import schemas as s
from services.api.auth import SECURITY, require
from services.api.consistency import (
    MinPosition,
    projections_read,
    reads,
    requested_position,
    wait_for,
)
from services.api.controllers import writes
from services.api.controllers.events import EventOut, event_out, split_types
from services.api.controllers.writes import IdempotencyKey, IfMatch, strict_body
from services.queries import members as q
from services.queries import stats
from services.store.identity import handle_owner, merged_into
from services.store.ledger import Ledger
from services.store.state import stream_version


class MemberPage(msgspec.Struct, kw_only=True):
    members: list[q.MemberOut]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


class HistoryPage(msgspec.Struct, kw_only=True):
    events: list[EventOut]
    next_cursor: int | None
    """Pass as `cursor` for older events; null when there are none."""


class ConnectionPage(msgspec.Struct, kw_only=True):
    connections: list[q.ConnectionOut]
    next_cursor: str | None


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


async def _consistent(
    request: Request[Any, Any, Any],
    min_position: int | None,
    only: tuple[str, ...] | None = None,
) -> None:
    """Wait for the projections the endpoint declares it reads (its `opt`, see `reads`), or
    for `only` those of them this request reads (a leaderboard reads its metric's)."""
    declared = projections_read(request)
    if only is not None and (undeclared := set(only) - set(declared)):
        raise LookupError(f"{request.url.path} reads undeclared projections {undeclared}")
    await wait_for(
        request.app.state.pool,
        declared if only is None else only,
        requested_position(request, min_position),
    )


async def _member(request: Request[Any, Any, Any], member_id: UUID) -> Response[q.MemberOut]:
    async with request.app.state.pool.connection() as conn:
        found = await q.profile(conn, member_id)
        version = await stream_version(conn, member_stream(member_id))
    if found is None:
        raise NotFoundException(
            f"no member with id {member_id} (or not projected yet: "
            "pass min_position to wait for your write)"
        )
    return Response(found, headers={"ETag": f'"{version}"'})


class MemberController(Controller):
    """Member reads and the two member writes that share their paths."""

    path = "/v1/members"
    guards = [require("read")]
    security = SECURITY
    tags = ["members"]

    @post(operation_id="RegisterMember", summary="Register a member", guards=[require("write")])
    async def register_member(
        self,
        request: Request[Any, Any, Any],
        data: s.MemberCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Register a member with a display name and any handles (`twitter:@yannr`)."""
        await strict_body(request, s.MemberCreate)
        return await writes.register_member(request, data, idempotency_key)

    @patch(
        "/{member_id:uuid}",
        operation_id="UpdateMember",
        status_code=200,
        summary="Update a member's profile and handles",
        guards=[require("write")],
    )
    async def update_member(
        self,
        request: Request[Any, Any, Any],
        member_id: UUID,
        data: s.MemberPatch,
        idempotency_key: IdempotencyKey = None,
        if_match: IfMatch = None,
    ) -> s.Written:
        """Change name, bio or links; link (`add_handles`) or unlink (`remove_handles`) handles."""
        await strict_body(request, s.MemberPatch)
        return await writes.update_member(request, member_id, data, idempotency_key, if_match)

    @get(operation_id="ListMembers", summary="Search and list members", opt=reads(q.PROFILE_READS))
    async def list_members(
        self,
        request: Request[Any, Any, Any],
        q_: Annotated[
            str | None, Parameter(query="q", max_length=200, description="Part of a name or handle")
        ] = None,
        status: Literal["newcomer", "regular", "occasional", "inactive"] | None = None,
        sort: Literal["activity", "contributions", "recognitions", "introductions"] = "activity",
        cursor: Annotated[str | None, Parameter(max_length=500)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        min_position: MinPosition = None,
    ) -> MemberPage:
        """Members not merged into another, most active (or most contributing…) first."""
        await _consistent(request, min_position)
        try:
            async with request.app.state.pool.connection() as conn:
                found, next_cursor = await q.list_members(
                    conn, q=q_, status=status, sort=sort, cursor=cursor, limit=limit
                )
        except ValueError as error:
            raise ValidationException(str(error)) from error
        return MemberPage(members=found, next_cursor=next_cursor)

    @get(
        "/{member_id:uuid}",
        operation_id="GetMember",
        summary="A member's profile",
        opt=reads(q.PROFILE_READS),
    )
    async def get_member(
        self, request: Request[Any, Any, Any], member_id: UUID, min_position: MinPosition = None
    ) -> Response[q.MemberOut]:
        """The profile with its counts; the ETag is the member's version, for If-Match."""
        await _consistent(request, min_position)
        return await _member(request, member_id)

    @get(
        "/by-handle/{platform:str}/{handle:str}",
        operation_id="GetMemberByHandle",
        summary="A member's profile by a handle",
        opt=reads(q.PROFILE_READS),
    )
    async def by_handle(
        self,
        request: Request[Any, Any, Any],
        platform: str,
        handle: str,
        min_position: MinPosition = None,
    ) -> Response[q.MemberOut]:
        """`/v1/members/by-handle/twitter/yannr`: any case, with or without `@`."""
        await _consistent(request, min_position)
        try:
            key = parse_handle(f"{platform}:{handle}").key
        except LedgerError as error:
            raise ValidationException(str(error)) from error
        ledger: Ledger = request.app.state.ledger
        owner = await handle_owner(ledger, key)
        if owner is None:
            raise NotFoundException(f"no member holds the handle {platform}:{handle}")
        return await _member(request, owner)

    @get(
        "/{member_id:uuid}/history",
        operation_id="GetMemberHistory",
        summary="A member's events, newest first",
    )
    async def history(
        self,
        request: Request[Any, Any, Any],
        member_id: UUID,
        types: Annotated[list[str] | None, Parameter(description="Only these event types")] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: Annotated[
            int | None, Parameter(ge=1, description="next_cursor of the previous page")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> HistoryPage:
        """Straight from the ledger (no projection lag): every event that names the member
        or a member merged into it, directly or down a chain of merges."""
        ledger: Ledger = request.app.state.ledger
        members = await merged_into(ledger, member_id)
        records = await ledger.read_tagged_any(
            [member_tag(member) for member in members],
            before=cursor,
            limit=limit,
            types=split_types(types),
            since=since,
            until=until,
        )
        # An event naming the member proves it exists (the rules admit no event naming an
        # unknown member): only an empty page pays for the existence check.
        if not records and not await ledger.read_stream(member_stream(member_id), limit=1):
            raise NotFoundException(f"no member with id {member_id}")
        next_cursor = records[-1].position if len(records) == limit else None
        return HistoryPage(events=[event_out(r) for r in records], next_cursor=next_cursor)

    @get(
        "/{member_id:uuid}/connections",
        operation_id="GetMemberConnections",
        summary="Who a member is connected to, strongest first",
        opt=reads(q.PROFILE_READS, q.CONNECTIONS_READS),
    )
    async def connections(
        self,
        request: Request[Any, Any, Any],
        member_id: UUID,
        cursor: Annotated[str | None, Parameter(max_length=500)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        min_position: MinPosition = None,
    ) -> ConnectionPage:
        """Through introductions, mentions and recognitions, with counts and last times."""
        await _consistent(request, min_position)
        try:
            async with request.app.state.pool.connection() as conn:
                if await q.profile(conn, member_id) is None:
                    raise NotFoundException(f"no member with id {member_id}")
                found, next_cursor = await q.connections(conn, member_id, limit, cursor)
        except ValueError as error:
            raise ValidationException(str(error)) from error
        return ConnectionPage(connections=found, next_cursor=next_cursor)


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
        await _consistent(request, min_position)
        groups: list[str] = list(dict.fromkeys(group_by or []))
        filters: dict[str, str | UUID] = {
            k: v for k, v in (("member", member), ("kind", kind), ("space", space)) if v is not None
        }
        async with request.app.state.pool.connection() as conn:
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
        await _consistent(request, min_position, stats.READS[metric])
        async with request.app.state.pool.connection() as conn:
            entries = await stats.leaderboard(conn, metric, days, limit)
        return Leaderboard(
            metric=metric,
            window=window,
            since=days.first_day,
            until=days.end_day,
            entries=entries,
        )


READ_CONTROLLERS: list[type[Controller]] = [MemberController, StatsController]
