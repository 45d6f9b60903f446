"""The live event stream (Server-Sent Events): the feed, pushed, and resumable by position."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException, ServiceUnavailableException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from domain.errors import LedgerError
from domain.handles import parse_handle
from domain.limits import MAX_POSITION
from domain.streams import member_stream, member_tag, space_tag
from services.api.auth import require
from services.api.controllers.events import split_types
from services.api.event_stream import event_stream
from services.api.numbers import whole_number
from services.api.stream_hub import StreamHub, TooManyStreams, Wanted
from services.settings import StreamSettings
from services.store.identity import handle_owner, merged_into
from services.store.ledger import Ledger

MEDIA_TYPE = "text/event-stream"


class StreamController(Controller):
    path = "/v1/events/stream"
    guards = [require("read")]
    security = [{"bearerAuth": []}]
    tags = ["feed"]

    @get(
        operation_id="StreamEvents",
        summary="The feed, live, as Server-Sent Events",
        description="Every event after a position (`Last-Event-ID`, or `after`), in order and "
        "once, then each new one as it is appended: `id:` is its position, `event:` its type, "
        "`data:` the JSON of one item of `GET /v1/events`. `types`, `member` (an id or a "
        "handle) and `space` send only matching events; `id:`-only messages still move the "
        "client's Last-Event-ID over the others. A comment heartbeat comes every "
        "LEDGER_SSE_HEARTBEAT_SECONDS; a client that falls LEDGER_SSE_QUEUE_EVENTS behind "
        "gets a last comment naming the position to resume from and is disconnected; a "
        "stream ends after LEDGER_SSE_MAX_SECONDS (reconnect with Last-Event-ID).",
        media_type=MEDIA_TYPE,
        responses={
            200: ResponseSpec(
                data_container=str,
                description='An endless text/event-stream (docs/integrating.md, "The live stream")',
                media_type=MEDIA_TYPE,
                generate_examples=False,
            )
        },
    )
    async def stream_events(
        self,
        state: State,
        ledger: Ledger,
        after: Annotated[
            int | None,
            Parameter(
                ge=0,
                le=MAX_POSITION,
                description="The last position you processed (Last-Event-ID wins when both "
                "are sent)",
            ),
        ] = None,
        last_event_id: Annotated[
            str | None,
            Parameter(
                header="Last-Event-ID",
                max_length=40,
                description="The `id:` of the last message you received: a position",
            ),
        ] = None,
        types: Annotated[list[str] | None, Parameter(description="Only these event types")] = None,
        member: Annotated[
            str | None,
            Parameter(
                max_length=200,
                description="Only events naming this member (an id, or a handle such as "
                "`github:ana`), or a member merged into it",
            ),
        ] = None,
        space: Annotated[
            str | None, Parameter(max_length=100, description="Only events in this space")
        ] = None,
    ) -> Stream:
        hub: StreamHub = state.stream_hub
        settings: StreamSettings = state.stream_settings
        if last_event_id is not None:
            after = whole_number(last_event_id, "Last-Event-ID")
        listed = split_types(types)
        wanted = Wanted(
            types=frozenset(listed) if listed else None,
            member_tags=await _member_tags(ledger, member) if member is not None else None,
            space_tag=space_tag(space) if space is not None else None,
        )
        try:
            hub.admit()
        except TooManyStreams:
            raise ServiceUnavailableException(
                detail=f"this server already serves {hub.max_streams} event streams, or is "
                "stopping; retry shortly",
                headers={"Retry-After": "5"},
            ) from None
        return Stream(
            event_stream(hub, wanted, after or 0, settings),
            media_type=MEDIA_TYPE,
            # A proxy that buffers answers (nginx) must pass each message on at once.
            headers={"X-Accel-Buffering": "no"},
        )


async def _member_tags(ledger: Ledger, reference: str) -> frozenset[str]:
    """The tags of the member named by id or handle, and of those merged into it; 404 if none."""
    try:
        member_id: UUID | None = UUID(reference)
    except ValueError:
        member_id = None
    if member_id is None:
        try:
            key = parse_handle(reference).key
        except LedgerError as error:
            raise ValidationException(str(error)) from error  # names the form, not the handle
        member_id = await handle_owner(ledger, key)
        if member_id is None:
            # Not echoed: a handle is personal data, and problems carry none.
            raise NotFoundException("no member holds this handle")
    elif not await ledger.read_stream(member_stream(member_id), limit=1):
        raise NotFoundException(f"no member with id {member_id}")
    return frozenset(member_tag(member) for member in await merged_into(ledger, member_id))
