"""The global feed, for integrators: resume from the last position you saw."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.exceptions import NotFoundException
from litestar.params import Parameter

from domain.limits import MAX_POSITION
from services.api.auth import require
from services.store.ledger import Ledger
from services.store.public import EventOut, event_out


class EventPage(msgspec.Struct, kw_only=True):
    events: list[EventOut]
    next_after: int
    """Pass as `after` to get the next page; equal to `after` when there was nothing new."""


def split_types(types: list[str] | None) -> list[str] | None:
    """`types=A,B` and `types=A&types=B` both work."""
    if not types:
        return None
    return [t for value in types for t in value.split(",") if t] or None


class EventController(Controller):
    path = "/v1/events"
    guards = [require("read")]
    security = [{"bearerAuth": []}]
    tags = ["feed"]

    @get(operation_id="ReadFeed", summary="The global feed after a position")
    async def read_feed(
        self,
        ledger: Ledger,
        after: Annotated[
            int, Parameter(ge=0, le=MAX_POSITION, description="The last position you processed")
        ] = 0,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
        types: Annotated[list[str] | None, Parameter(description="Only these event types")] = None,
    ) -> EventPage:
        """Events in position order. A reader that saw position P never later finds one below P."""
        records = await ledger.read_feed(after=after, limit=limit, types=split_types(types))
        return EventPage(
            events=[event_out(r) for r in records],
            next_after=records[-1].position if records else after,
        )

    @get("/{event_id:uuid}", operation_id="GetEvent", summary="One event by id")
    async def get_event(self, ledger: Ledger, event_id: UUID) -> EventOut:
        record = await ledger.get(event_id)
        if record is None:
            raise NotFoundException(f"no event with id {event_id}")
        return event_out(record)
