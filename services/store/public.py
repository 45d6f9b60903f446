"""The shape an event takes outside the ledger: one item of the feed.

The feed, a member's history, the export, the live stream and the webhooks all show an
event this way, so a tool that reads one can read them all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from services.store.records import RecordedEvent


class EventOut(msgspec.Struct, kw_only=True):
    position: int
    event_id: UUID
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    stream: str
    stream_version: int
    tags: list[str]
    occurred_at: datetime
    recorded_at: datetime


def event_out(record: RecordedEvent) -> EventOut:
    data = msgspec.json.decode(record.data)
    data.pop("type", None)
    return EventOut(
        position=record.position,
        event_id=record.event_id,
        type=record.type,
        schema_version=record.schema_version,
        data=data,
        metadata=record.metadata,
        stream=record.stream,
        stream_version=record.stream_version,
        tags=list(record.tags),
        occurred_at=record.occurred_at,
        recorded_at=record.recorded_at,
    )
