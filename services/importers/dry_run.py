"""A ledger that decides but never writes: the real ledger plus what a dry run already decided.

A dry run goes through the same handler and rules as a real import; only `append`
differs: it keeps the events in memory, so line 10 of a file can name the member
line 2 registered. Reads answer from the ledger and this overlay together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg

from domain.codec import decode_event, encode_payload
from domain.events import ContributionRecorded
from services.store.ledger import Ledger
from services.store.records import (
    AppendCondition,
    Appended,
    NewEvent,
    RecordedEvent,
    StoredAnswer,
)
from services.store.state import MEMBER_LIFECYCLE, Row, Wanted

# Above any position a real ledger will reach, so decided events sort after recorded ones.
FIRST_POSITION = 2**62
_NO_METADATA: dict[str, Any] = {}


class DryRunLedger(Ledger):
    """Reads through to `ledger`; appends stay here.

    The rules only look at ids and handles, so a contribution's texts are dropped
    before it is kept: a dry run holds about half a kilobyte per decided event.
    """

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.pool, ledger.keyring)
        self.position = FIRST_POSITION
        self.streams: dict[str, list[RecordedEvent]] = defaultdict(list)
        self.tagged: dict[str, list[RecordedEvent]] = defaultdict(list)
        self.answers: dict[str, StoredAnswer] = {}
        self.recorded_at = datetime.now(UTC)

    async def append(
        self,
        events: Sequence[NewEvent],
        *,
        expected_versions: Mapping[str, int] | None = None,
        condition: AppendCondition | None = None,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        conn: psycopg.AsyncConnection[Any] | None = None,
    ) -> Appended:
        positions = [
            self._keep(event, (expected_versions or {}).get(event.stream)) for event in events
        ]
        answer = Appended(positions=tuple(positions), event_ids=tuple(e.event_id for e in events))
        if idempotency_key is not None:
            stored = msgspec.structs.replace(answer, replayed=True)
            self.answers[idempotency_key] = StoredAnswer(
                fingerprint=fingerprint or "", answer=stored
            )
        return answer

    async def recall(self, idempotency_key: str) -> StoredAnswer | None:
        return self.answers.get(idempotency_key) or await super().recall(idempotency_key)

    async def read_stream(
        self, stream: str, *, from_version: int = 1, limit: int = 10_000
    ) -> list[RecordedEvent]:
        recorded = await super().read_stream(stream, from_version=from_version, limit=limit)
        decided = [r for r in self.streams.get(stream, ()) if r.stream_version >= from_version]
        return [*recorded, *decided][:limit]

    async def read_state(self, wanted: Wanted) -> list[Row]:
        """What the handler's loader asks for: the ledger's rows, then the decided ones."""
        rows = await super().read_state(wanted)
        decided = [r for stream in wanted.streams for r in self.streams.get(stream, ())]
        decided += [r for tag in wanted.tags for r in self.tagged.get(tag, ())]
        decided += [
            r
            for tag in wanted.typed_tags
            for r in self.tagged.get(tag, ())
            if r.type in MEMBER_LIFECYCLE
        ]
        return rows + [
            Row(r.position, r.type, r.schema_version, bytes(r.data), r.stream, r.stream_version)
            for r in decided
        ]

    async def read_tagged(
        self,
        tag: str,
        *,
        before: int | None = None,
        limit: int = 50,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[RecordedEvent]:
        decided = [
            r
            for r in reversed(self.tagged.get(tag, ()))
            if (before is None or r.position < before)
            and (not types or r.type in types)
            and (since is None or r.occurred_at >= since)
            and (until is None or r.occurred_at < until)
        ][:limit]
        recorded = await super().read_tagged(
            tag, before=before, limit=limit - len(decided), types=types, since=since, until=until
        )
        return [*decided, *recorded] if len(decided) < limit else decided

    def _keep(self, event: NewEvent, expected_version: int | None) -> int:
        self.position += 1
        kept = self.streams[event.stream]
        version = (kept[-1].stream_version if kept else expected_version or 0) + 1
        record = RecordedEvent(
            position=self.position,
            event_id=event.event_id,
            type=event.type,
            schema_version=event.schema_version,
            data=msgspec.Raw(_slim(event)),
            metadata=_NO_METADATA,
            stream=event.stream,
            stream_version=version,
            tags=(),
            occurred_at=event.occurred_at,
            recorded_at=self.recorded_at,
        )
        kept.append(record)
        for tag in event.tags:
            self.tagged[tag].append(record)
        return self.position


def _slim(event: NewEvent) -> bytes:
    """The payload without what no rule reads (a contribution's texts)."""
    decoded = decode_event(event.type, event.schema_version, bytes(event.data))
    if isinstance(decoded, ContributionRecorded):
        decoded = msgspec.structs.replace(decoded, title="", body="", url="", attributes={})
        return encode_payload(decoded)
    return bytes(event.data)
