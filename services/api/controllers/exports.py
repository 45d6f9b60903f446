"""A member's data on request: everything the ledger holds about and by one member.

A GDPR access or portability request in one call, so it needs an admin key. The answer
is streamed a page of events at a time, so a member with a million events costs the
server one page of memory, in JSON as in JSONL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream
from psycopg_pool import AsyncConnectionPool

from domain.streams import member_stream, member_tag
from services.api.auth import ADMIN_SECURITY, require
from services.queries import members as q
from services.store.identity import merged_into
from services.store.ledger import Ledger
from services.store.public import EventOut, event_out

PAGE = 500
JSON = "application/json"
JSONL = "application/x-ndjson"


class ExportHeader(msgspec.Struct, kw_only=True):
    """What an export says before its events: the first line of the JSONL form."""

    member_id: UUID
    exported_at: datetime
    members: list[UUID]
    """The member and every member merged into it: the events of all of them follow."""
    profile: q.MemberOut | None
    """The profile as the projections hold it; null if not projected yet."""


class MemberExport(ExportHeader, kw_only=True):
    events: list[EventOut]
    """Every event naming the member (or one merged into it), newest first, as the feed
    and the history show them."""


class ExportController(Controller):
    path = "/v1/members"
    guards = [require("admin")]
    security = ADMIN_SECURITY
    tags = ["members"]

    @get(
        "/{member_id:uuid}/export",
        operation_id="ExportMember",
        summary="Everything the ledger holds about and by one member",
        description="A member's data, for an access or portability request: the profile and "
        "every event that names the member (as author, subject, introducer, introduced, "
        "mentioner, mentioned, giver or receiver), including those of members merged into "
        "it. JSON by default; JSONL with `format=jsonl` or `Accept: application/x-ndjson`: "
        "a first line without `events`, then one event per line. Streamed, so any member "
        "can be exported. Needs an API key with scope `admin`.",
        responses={
            200: ResponseSpec(
                data_container=MemberExport,
                description="The export (JSON), or its lines (JSONL)",
                media_type=JSON,
                generate_examples=False,
            )
        },
    )
    async def export(
        self,
        request: Request[Any, Any, Any],
        pool: AsyncConnectionPool,
        ledger: Ledger,
        member_id: UUID,
        format_: Annotated[
            Literal["json", "jsonl"] | None,
            Parameter(query="format", description="jsonl for one JSON value per line"),
        ] = None,
    ) -> Stream:
        if not await ledger.read_stream(member_stream(member_id), limit=1):
            raise NotFoundException(f"no member with id {member_id}")
        members = await merged_into(ledger, member_id)
        async with pool.connection() as conn:
            profile = await q.profile(conn, member_id)
        header = ExportHeader(
            member_id=member_id,
            exported_at=datetime.now(UTC),
            members=members,
            profile=profile,
        )
        lines = _wants_lines(format_, request.headers.get("accept", ""))
        events = _events(ledger, [member_tag(member) for member in members])
        return Stream(
            _jsonl(header, events) if lines else _json(header, events),
            media_type=JSONL if lines else JSON,
            headers={"Cache-Control": "no-store"},
        )


def _wants_lines(format_: str | None, accept: str) -> bool:
    if format_ is not None:
        return format_ == "jsonl"
    return JSONL in accept.lower()


async def _events(ledger: Ledger, tags: list[str]) -> AsyncIterator[bytes]:
    """Each event encoded, a page at a time (the history's read and shape)."""
    before = None
    while True:
        records = await ledger.read_tagged_any(tags, before=before, limit=PAGE)
        for record in records:
            yield msgspec.json.encode(event_out(record))
        if len(records) < PAGE:
            return
        before = records[-1].position


async def _jsonl(header: ExportHeader, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield msgspec.json.encode(header) + b"\n"
    async for event in events:
        yield event + b"\n"


async def _json(header: ExportHeader, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    # The header's object, left open for the events array; one event per chunk.
    yield msgspec.json.encode(header)[:-1] + b',"events":['
    separator = b""
    async for event in events:
        yield separator + event
        separator = b","
    yield b"]}"
