"""Helpers for the store tests: events with unique ids, and a quick count of rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import psycopg

from services.store.records import NewEvent


def new_event(
    stream: str = "test-stream", tags: tuple[str, ...] = (), type: str = "Noted", **data: object
) -> NewEvent:
    return NewEvent(
        event_id=uuid.uuid4(),
        type=type,
        data=msgspec.Raw(msgspec.json.encode(data or {"note": "x"})),
        stream=stream,
        tags=tags,
        occurred_at=datetime.now(UTC),
    )


def count_rows(database_url: str, table: str = "events") -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])
