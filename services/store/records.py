"""The store's row shapes: events on their way in, events read back, and append answers.

Also how a row of the events table becomes a `RecordedEvent`, shared by every reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg

from domain.codec import decode_event
from domain.events import Event
from domain.personal import BLANKS

ERASED = "erased"


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event on its way into the ledger: the payload already encoded, the envelope beside it."""

    event_id: UUID
    type: str
    data: msgspec.Raw
    stream: str
    occurred_at: datetime
    tags: tuple[str, ...] = ()
    schema_version: int = 1
    metadata: dict[str, Any] = {}


class SealedEvent(msgspec.Struct, frozen=True, gc=False):
    """A `NewEvent` as the append sends it once sealed (services/store/sealed.py): the same
    fields, `data` the stored payload still as a struct, encoded with the whole batch.
    Untracked by the garbage collector: nothing it holds can refer back to it. Positional
    (in `NewEvent`'s order): a thousand are made per batch, and keywords cost twice as much."""

    event_id: UUID
    type: str
    data: Any
    stream: str
    occurred_at: datetime
    tags: tuple[str, ...] = ()
    schema_version: int = 1
    metadata: dict[str, Any] = {}


class FeedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Just what a fold needs of an event: a projection reads millions of them, and
    parsing metadata, tags and a second timestamp per row cost it a sixth of its time."""

    position: int
    event_id: UUID
    type: str
    schema_version: int
    data: msgspec.Raw
    occurred_at: datetime

    def decode(self) -> Event:
        return decode_event(self.type, self.schema_version, bytes(self.data))


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    event_id: UUID
    type: str
    schema_version: int
    data: msgspec.Raw
    metadata: dict[str, Any]
    stream: str
    stream_version: int
    tags: tuple[str, ...]
    occurred_at: datetime
    recorded_at: datetime
    erased: bool = False
    """Opened without its key: `data` holds the personal fields as null (docs/privacy.md)."""

    def decode(self) -> Event:
        if self.erased:
            payload = msgspec.json.decode(self.data)
            del payload[ERASED]
            return decode_event(self.type, self.schema_version, {**payload, **BLANKS[self.type]})
        return decode_event(self.type, self.schema_version, bytes(self.data))


class Query(msgspec.Struct, frozen=True, kw_only=True):
    """Events carrying all of `tags` and, when `types` is given, of one of those types."""

    tags: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


class AppendCondition(msgspec.Struct, frozen=True, kw_only=True):
    """Fail the append if any event matching one of `fail_if_events_match` came after `after`."""

    fail_if_events_match: tuple[Query, ...]
    after: int


class Appended(msgspec.Struct, frozen=True, kw_only=True):
    positions: tuple[int, ...]
    event_ids: tuple[UUID, ...]
    replayed: bool = False
    """True when this answers a retry: nothing was written this time."""


class StoredAnswer(msgspec.Struct, frozen=True, kw_only=True):
    fingerprint: str
    answer: Appended


EVENT_ID, TYPE, DATA, KEY, BOX = 1, 2, 4, 11, 12
"""Where a `CUT_COLUMNS` row holds what opening its payload needs."""


FIELDS = (
    "position",
    "event_id",
    "type",
    "schema_version",
    "data::text",
    "metadata",
    "stream",
    "stream_version",
    "tags",
    "occurred_at",
    "recorded_at",
)
COLUMNS = ", ".join(FIELDS)
"""The select list every `RecordedEvent` is read with, in `recorded`'s order."""


def cut_fields(alias: str = "") -> str:
    """`FIELDS` with the payload's box cut out by the database and sent beside it, as its
    member's id and its base64 text (both null when there is none): a reader then finds
    the box without parsing the payload or relying on how jsonb spells it, and opens it
    without cutting it out of the text (`Sealer.recorded`)."""
    data = f"{alias}data"
    return ", ".join(
        [
            *(f"{alias}{field}" for field in FIELDS[:DATA]),
            f"({data} - 'sealed')::text",
            *(f"{alias}{field}" for field in FIELDS[DATA + 1 :]),
            f"{data} -> 'sealed' ->> 'key'",
            f"{data} -> 'sealed' ->> 'box'",
        ]
    )


CUT_COLUMNS = cut_fields()
"""`COLUMNS` with the box cut out and beside the row, for readers that open it at once."""


def recorded(
    row: tuple[Any, ...], data: bytes | None = None, erased: bool = False
) -> RecordedEvent:
    """A row selected with `COLUMNS` (or `CUT_COLUMNS`, whose two last columns it ignores);
    `data`, when given, in place of its stored payload (`Sealer.recorded` opens it first)."""
    return RecordedEvent(
        position=row[0],
        event_id=row[1],
        type=row[2],
        schema_version=row[3],
        data=msgspec.Raw(row[DATA].encode() if data is None else data),
        metadata=row[5],
        stream=row[6],
        stream_version=row[7],
        tags=tuple(row[8]),
        occurred_at=row[9],
        recorded_at=row[10],
        erased=erased,
    )


async def fetch(
    conn: psycopg.AsyncConnection[Any], query: str, params: Mapping[str, Any]
) -> list[RecordedEvent]:
    """Run a read that selects `COLUMNS` on a connection the caller holds."""
    return [recorded(row) for row in await fetch_rows(conn, query, params)]


async def fetch_rows(
    conn: psycopg.AsyncConnection[Any], query: str, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of a read that selects `CUT_COLUMNS`, for `Sealer.recorded` to open."""
    cur = await conn.execute(query, params, prepare=True)
    return await cur.fetchall()
