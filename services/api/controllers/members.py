"""Members: register, update, merge and erase them; read, search and follow their history.

Reads of projections accept `min_position` (or the `Ledger-Min-Position` header) and
wait, bounded, until the projections they read have caught up to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter
from psycopg_pool import AsyncConnectionPool

from domain.errors import LedgerError
from domain.handles import parse_handle
from domain.limits import MAX_POSITION
from domain.streams import member_stream, member_tag
from services import items
from services.api import schemas as s
from services.api.auth import ADMIN_SECURITY, SECURITY, require
from services.api.consistency import MinPosition, consistent, reads
from services.api.controllers.events import split_types
from services.api.controllers.introductions import moment_and_window
from services.api.controllers.writing import (
    IdempotencyKey,
    IfMatch,
    version_from_etag,
    write_one,
)
from services.handler import CommandHandler
from services.queries import introductions as qi
from services.queries import members as q
from services.queries.cursors import InvalidCursor
from services.store.identity import handle_owner, merged_into
from services.store.ledger import Ledger
from services.store.public import EventOut, event_out
from services.store.state import stream_version


class HistoryPage(msgspec.Struct, kw_only=True):
    events: list[EventOut]
    next_cursor: int | None
    """Pass as `cursor` for older events; null when there are none."""


class MemberController(Controller):
    """Tags are per operation: merges and erasures are listed with the other writes."""

    path = "/v1/members"
    guards = [require("read")]
    security = SECURITY

    @post(
        operation_id="RegisterMember",
        summary="Register a member",
        guards=[require("write")],
        tags=["members"],
    )
    async def register_member(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        data: items.MemberCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Register a member with a display name and any handles (`twitter:@yannr`)."""
        return await write_one(request, handler, data, idempotency_key)

    @patch(
        "/{member_id:uuid}",
        operation_id="UpdateMember",
        status_code=200,
        summary="Update a member's profile and handles",
        guards=[require("write")],
        tags=["members"],
    )
    async def update_member(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        member_id: UUID,
        data: items.MemberPatch,
        idempotency_key: IdempotencyKey = None,
        if_match: IfMatch = None,
    ) -> s.Written:
        """Change name, bio or links; link (`add_handles`) or unlink (`remove_handles`) handles."""
        expected = data.expected_version if if_match is None else version_from_etag(if_match)
        versions = {member_stream(member_id): expected} if expected is not None else None
        item = items.UpdateMemberItem(member=str(member_id), **msgspec.structs.asdict(data))
        return await write_one(request, handler, item, idempotency_key, versions)

    @post(
        "/{member_id:uuid}/merges",
        operation_id="MergeMembers",
        summary="Fold a duplicate member into this one",
        guards=[require("admin")],
        security=ADMIN_SECURITY,
        description="The duplicate's history counts for this member from now on; its handles "
        "move here. Needs an API key with scope `admin`: a merge cannot be undone.",
        tags=["writes"],
    )
    async def merge_members(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        member_id: UUID,
        data: s.MemberMerge,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """The duplicate's history counts for this member from now on; its handles move here."""
        item = items.MergeMembersItem(survivor=str(member_id), duplicate=data.duplicate)
        return await write_one(request, handler, item, idempotency_key)

    @post(
        "/{member_id:uuid}/erasure",
        operation_id="ForgetMember",
        summary="Erase a member's personal data",
        guards=[require("admin")],
        security=ADMIN_SECURITY,
        description="Profiles stop showing the member's name, handles, bio and links; counts "
        "stay. Needs an API key with scope `admin`: an erasure cannot be undone. The event "
        "records which key asked (`metadata.api_key_id`).",
        tags=["writes"],
    )
    async def forget_member(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        member_id: UUID,
        data: items.MemberErasure,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Destroys the member's data key (and those of members merged into it): their name,
        handles, bio, links and everything they wrote read as erased (`null`, with
        `"erased": true`) in every answer, and their handles are free. Counts and
        connections stay. Erasing twice answers success and writes nothing. See
        docs/privacy.md."""
        item = items.ForgetMemberItem(member=str(member_id), reason=data.reason)
        return await write_one(request, handler, item, idempotency_key)

    @get(
        operation_id="ListMembers",
        summary="Search and list members",
        opt=reads(q.PROFILE_READS),
        tags=["members"],
    )
    async def list_members(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        q_: Annotated[
            str | None, Parameter(query="q", max_length=200, description="Part of a name or handle")
        ] = None,
        status: Literal["newcomer", "regular", "occasional", "inactive"] | None = None,
        sort: Literal["activity", "contributions", "recognitions", "introductions"] = "activity",
        cursor: Annotated[str | None, Parameter(max_length=500)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        min_position: MinPosition = None,
    ) -> s.MemberPage:
        """Members not merged into another, most active (or most contributing…) first."""
        await consistent(request, min_position)
        try:
            async with pool.connection() as conn:
                found, next_cursor = await q.list_members(
                    conn, q=q_, status=status, sort=sort, cursor=cursor, limit=limit
                )
        except InvalidCursor as error:
            raise _bad_cursor(error) from error
        return s.MemberPage(members=found, next_cursor=next_cursor)

    @get(
        "/{member_id:uuid}",
        operation_id="GetMember",
        summary="A member's profile",
        opt=reads(q.PROFILE_READS, qi.READS),
        tags=["members"],
    )
    async def get_member(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        member_id: UUID,
        min_position: MinPosition = None,
    ) -> Response[MemberDetail]:
        """The profile with its counts and how its introductions turned out (as of now); the
        ETag is the member's version, for If-Match."""
        await consistent(request, min_position)
        return await _member(request, pool, member_id)

    @get(
        "/by-handle/{platform:str}/{handle:str}",
        operation_id="GetMemberByHandle",
        summary="A member's profile by a handle",
        opt=reads(q.PROFILE_READS, qi.READS),
        tags=["members"],
    )
    async def by_handle(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        ledger: Ledger,
        platform: str,
        handle: str,
        min_position: MinPosition = None,
    ) -> Response[MemberDetail]:
        """`/v1/members/by-handle/twitter/yannr`: any case, with or without `@`."""
        await consistent(request, min_position)
        try:
            key = parse_handle(f"{platform}:{handle}").key
        except LedgerError as error:
            raise ValidationException(str(error)) from error  # names the form, not the handle
        owner = await handle_owner(ledger, key)
        if owner is None:
            # Not echoed: a handle is personal data, and problems carry none.
            raise NotFoundException("no member holds this handle")
        return await _member(request, pool, owner)

    @get(
        "/{member_id:uuid}/history",
        operation_id="GetMemberHistory",
        summary="A member's events, newest first",
        tags=["members"],
    )
    async def history(
        self,
        ledger: Ledger,
        member_id: UUID,
        types: Annotated[list[str] | None, Parameter(description="Only these event types")] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        cursor: Annotated[
            int | None,
            Parameter(ge=1, le=MAX_POSITION, description="next_cursor of the previous page"),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> HistoryPage:
        """Straight from the ledger (no projection lag): every event that names the member
        or a member merged into it, directly or down a chain of merges."""
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
        tags=["members"],
    )
    async def connections(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        member_id: UUID,
        cursor: Annotated[str | None, Parameter(max_length=500)] = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        min_position: MinPosition = None,
    ) -> s.ConnectionPage:
        """Through introductions, mentions and recognitions, with counts and last times."""
        try:
            after = q.connections_cursor(cursor) if cursor else None
        except InvalidCursor as error:
            raise _bad_cursor(error) from error
        await consistent(request, min_position)
        async with pool.connection() as conn:
            if await q.profile(conn, member_id) is None:
                raise NotFoundException(f"no member with id {member_id}")
            found, next_cursor = await q.connections(conn, member_id, limit, after)
        return s.ConnectionPage(connections=found, next_cursor=next_cursor)


def _bad_cursor(error: InvalidCursor) -> ValidationException:
    return ValidationException(
        f"cursor: {error}", extra=[{"key": "cursor", "source": "query", "message": str(error)}]
    )


class MemberDetail(q.MemberOut, kw_only=True):
    """One member's profile: the list's fields, and how their introductions turned out."""

    introduction_outcomes: qi.Outcomes


async def _member(
    request: Request[Any, Any, Any], pool: AsyncConnectionPool, member_id: UUID
) -> Response[MemberDetail]:
    as_of, window = moment_and_window(request, None, None)
    # One checkout and one snapshot: the profile and its outcomes agree on the positions.
    async with pool.connection() as conn, conn.transaction():
        at = await qi.snapshot(conn, as_of, window)
        found = await q.profile(conn, member_id)
        if found is None:
            raise NotFoundException(
                f"no member with id {member_id} (or not projected yet: "
                "pass min_position to wait for your write)"
            )
        version = await stream_version(conn, member_stream(member_id))
        outcomes = await qi.outcomes(conn, member_id, at, window)
    detail = MemberDetail(**msgspec.structs.asdict(found), introduction_outcomes=outcomes)
    return Response(detail, headers={"ETag": f'"{version}"'})
