"""What the append workloads compare ours with: the Python peer and PostgreSQL's ceiling.

The peer is `eventsourcing` 9.5 on its PostgreSQL persistence (the `[bench]` extra), one
Application per fresh database. The ceiling is plain psycopg writing the same rows into
`ceiling_events`, a copy of our events table (its columns and indexes, none of our
functions or triggers) whose positions come from an identity column: no ordering
guarantee, no version check, no tag rows.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg.conninfo import conninfo_to_dict

from bench.synthetic import synthetic_events
from domain.ids import new_id
from services.store.records import NewEvent

try:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
except ImportError:  # the [bench] extra is not installed: ours and the ceilings only
    PEER_INSTALLED = False
else:
    PEER_INSTALLED = True

    class PeerStream(Aggregate):
        """One of the peer's aggregates: the counterpart of one of our streams."""

        @event("Started")
        def __init__(self, data: dict[str, Any]) -> None:
            pass

        @event("Recorded")
        def record(self, data: dict[str, Any]) -> None:
            pass


PEER = "eventsourcing"
PEER_MISSING = (
    "eventsourcing is not installed, so the peer is left out: "
    "`.venv/bin/pip install -e '.[bench]'` adds it"
)

CEILING_TABLE = "ceiling_events"
CEILING_COLUMNS = (
    "event_id",
    "type",
    "schema_version",
    "data",
    "metadata",
    "stream",
    "stream_version",
    "tags",
    "occurred_at",
)
INSERT_CEILING = f"""
    INSERT INTO {CEILING_TABLE} ({", ".join(CEILING_COLUMNS)})
    VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s)
"""
COPY_CEILING = f"COPY {CEILING_TABLE} ({', '.join(CEILING_COLUMNS)}) FROM STDIN"


def create_ceiling_table(url: str) -> None:
    """`ceiling_events` beside our `events`, in the same migrated database."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {CEILING_TABLE} (LIKE events INCLUDING ALL)")
        # Our xid column (and its index) exists only to order readers: not the ceiling's job.
        conn.execute(f"ALTER TABLE {CEILING_TABLE} DROP COLUMN IF EXISTS xid")
        conn.execute(f"ALTER TABLE {CEILING_TABLE} ALTER COLUMN position DROP DEFAULT")
        conn.execute(
            f"ALTER TABLE {CEILING_TABLE} ALTER COLUMN position ADD GENERATED ALWAYS AS IDENTITY"
        )


def ceiling_row(new: NewEvent, stream_version: int) -> tuple[Any, ...]:
    """The row our store would write for `new`, as INSERT and COPY parameters."""
    return (
        new.event_id,
        new.type,
        new.schema_version,
        bytes(new.data).decode(),
        msgspec.json.encode(new.metadata).decode(),
        new.stream,
        stream_version,
        list(new.tags),
        new.occurred_at,
    )


def ceiling_rows(events: Sequence[NewEvent]) -> list[tuple[Any, ...]]:
    """Rows for a batch, each stream numbered from 1 (every sample starts on empty tables)."""
    versions: dict[str, int] = {}
    rows = []
    for new in events:
        versions[new.stream] = versions.get(new.stream, 0) + 1
        rows.append(ceiling_row(new, versions[new.stream]))
    return rows


class Payloads:
    """Realistic payloads (type, data, tags) taken in turn from a synthetic ledger."""

    def __init__(self, count: int = 1_000) -> None:
        self._items = [
            (new.type, new.data, new.tags, msgspec.json.decode(new.data))
            for new in synthetic_events(count)
        ]
        self._cycle = itertools.cycle(self._items)

    def new_event(self, stream: str) -> NewEvent:
        """A fresh event on `stream`, for ours and the ceiling."""
        type_, data, tags, _ = next(self._cycle)
        return NewEvent(
            event_id=new_id(),
            type=type_,
            data=data,
            stream=stream,
            tags=tags,
            occurred_at=datetime.now(UTC),
        )

    def peer_data(self) -> dict[str, Any]:
        """The next payload as the peer's aggregate event carries it."""
        return next(self._cycle)[3]


@contextlib.contextmanager
def peer_application(url: str, pool_size: int) -> Iterator[Any]:
    """The peer's Application on the database at `url` (its tables created on the way in)."""
    params = conninfo_to_dict(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params["dbname"]),
        "POSTGRES_HOST": str(params.get("host") or "localhost"),
        "POSTGRES_PORT": str(params.get("port") or 5432),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
    }
    app = Application(env=env)
    try:
        yield app
    finally:
        app.close()
