"""What the rules need for a batch of commands, read in a few set-based queries.

The handler's loader (services/loading.py) walks the same steps for one command or five
hundred (handles → their owners → the commands' streams → the members those name), and
each step is one query here for everything it names (`stream = ANY(…)`, `tag = ANY(…)`),
so a chunk of an import costs a handful of round trips, not several per command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

import psycopg

from domain.codec import decode_event
from domain.events import Event

MEMBER_LIFECYCLE = ("MembersMerged",)
"""The rare types the loader reads from other members' streams by their tags."""

# Three reads in one round trip; a branch given an empty array costs nothing. Only what
# the rules read is selected: no metadata, tags or dates to decode.
#  - streams and tags: one index probe per stream or tag, whatever the ledger's size; the
#    fences (OFFSET 0) keep them probes, where the planner would hash-join a scan of
#    event_tags on a small ledger, and planning costs no look at each array element;
#  - typed_tags: the few events of a rare type (merges), kept if they carry one of the
#    tags, rather than every event of each member (thousands for an active one). The type
#    is written out, not a parameter, so even a generic plan knows it is rare.
READ_STATE = f"""
    SELECT x.*
    FROM unnest(%(streams)s::text[]) AS w(stream)
    CROSS JOIN LATERAL (
        SELECT e.position, e.type, e.schema_version, e.data::text, e.stream, e.stream_version,
               e.event_id
        FROM events e
        WHERE e.stream = w.stream
        OFFSET 0
    ) AS x
    UNION ALL
    SELECT x.*
    FROM unnest(%(tags)s::text[]) AS w(tag)
    CROSS JOIN LATERAL (
        SELECT e.position, e.type, e.schema_version, e.data::text, e.stream, e.stream_version,
               e.event_id
        FROM event_tags t
        JOIN events e ON e.position = t.position
        WHERE t.tag = w.tag
        OFFSET 0
    ) AS x
    UNION ALL
    SELECT position, type, schema_version, data::text, stream, stream_version, event_id
    FROM events
    WHERE cardinality(%(typed_tags)s::text[]) > 0
      AND type IN ({", ".join(f"'{name}'" for name in MEMBER_LIFECYCLE)})
      AND tags && %(typed_tags)s::text[]
"""

STREAM_VERSION = """
    SELECT coalesce(max(stream_version), 0)
    FROM events
    WHERE stream = %s
"""


class Row(NamedTuple):
    """The part of a recorded event the rules read."""

    position: int
    type: str
    schema_version: int
    data: str | bytes
    stream: str
    stream_version: int
    event_id: UUID | None = None
    """What a sealed payload's box is bound to; None for a dry run's unsealed rows."""

    def decode(self) -> Event:
        return decode_event(self.type, self.schema_version, self.data)


class Wanted(NamedTuple):
    """Whole streams, every event with one of `tags`, merges with one of `typed_tags`."""

    streams: Sequence[str] = ()
    tags: Sequence[str] = ()
    typed_tags: Sequence[str] = ()


async def fetch_state(conn: psycopg.AsyncConnection[Any], wanted: Wanted) -> list[Row]:
    params = {name: list(values) for name, values in wanted._asdict().items()}
    # Never prepared: a plan cached while the tables were small scans them per tag later
    # on; planned afresh, each read sees the tables' current size (planning: ~0.3 ms).
    cur = await conn.execute(READ_STATE, params, prepare=False)
    return [Row(*row) for row in await cur.fetchall()]


async def stream_version(conn: psycopg.AsyncConnection[Any], stream: str) -> int:
    """The stream's current version (0: no events yet), as `expected_versions` takes it."""
    cur = await conn.execute(STREAM_VERSION, [stream])
    row = await cur.fetchone()
    return int(row[0]) if row else 0
