"""What the rules need for a batch of commands, read in a few set-based queries.

The handler's loader walks the same steps for one command or five hundred (handles →
their owners → the commands' streams → the members those name), and each step is one
query for everything it names (`stream = ANY(…)`, `tag = ANY(…)`), so a chunk of an
import costs a handful of round trips, not several per command.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable
from uuid import UUID

import psycopg

from domain import commands as c
from domain.codec import decode_event
from domain.events import Event
from domain.handles import normalize_handle
from domain.state import Known, fold
from services.store.ledger import AppendCondition, Ledger, Query

MEMBER_LIFECYCLE = ("MembersMerged",)

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
        SELECT e.position, e.type, e.schema_version, e.data::text, e.stream, e.stream_version
        FROM events e
        WHERE e.stream = w.stream
        OFFSET 0
    ) AS x
    UNION ALL
    SELECT x.*
    FROM unnest(%(tags)s::text[]) AS w(tag)
    CROSS JOIN LATERAL (
        SELECT e.position, e.type, e.schema_version, e.data::text, e.stream, e.stream_version
        FROM event_tags t
        JOIN events e ON e.position = t.position
        WHERE t.tag = w.tag
        OFFSET 0
    ) AS x
    UNION ALL
    SELECT position, type, schema_version, data::text, stream, stream_version
    FROM events
    WHERE cardinality(%(typed_tags)s::text[]) > 0
      AND type IN ({", ".join(f"'{name}'" for name in MEMBER_LIFECYCLE)})
      AND tags && %(typed_tags)s::text[]
"""


class Row(NamedTuple):
    """The part of a recorded event the rules read."""

    position: int
    type: str
    schema_version: int
    data: str | bytes
    stream: str
    stream_version: int

    def decode(self) -> Event:
        return decode_event(self.type, self.schema_version, self.data)


class Wanted(NamedTuple):
    """Whole streams, every event with one of `tags`, merges with one of `typed_tags`."""

    streams: Sequence[str] = ()
    tags: Sequence[str] = ()
    typed_tags: Sequence[str] = ()


@runtime_checkable
class StateSource(Protocol):
    """A ledger that answers `Wanted` itself (a dry run adds what it decided in memory)."""

    async def read_state(self, wanted: Wanted) -> list[Row]: ...


async def read_state(ledger: Ledger, wanted: Wanted) -> list[Row]:
    if isinstance(ledger, StateSource):
        return await ledger.read_state(wanted)
    async with ledger.pool.connection() as conn:
        return await fetch_state(conn, wanted)


async def fetch_state(conn: psycopg.AsyncConnection[Any], wanted: Wanted) -> list[Row]:
    params = {name: list(values) for name, values in wanted._asdict().items()}
    # Never prepared: a plan cached while the tables were small scans them per tag later
    # on; planned afresh, each read sees the tables' current size (planning: ~0.3 ms).
    cur = await conn.execute(READ_STATE, params, prepare=False)
    return [Row(*row) for row in await cur.fetchall()]


class Loader:
    """Reads the streams and tags the rules need, remembering versions for the append."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.versions: dict[str, int] = {}
        self.handle_keys: set[str] = set()
        self.merge_tags: set[str] = set()
        self._events: dict[int, Event] = {}
        self._known: Known | None = None

    def known(self) -> Known:
        """Everything read so far, folded in ledger order (once per read, however often asked)."""
        if self._known is None:
            self._known = fold(self._events[position] for position in sorted(self._events))
        return self._known

    def condition(self, head: int) -> AppendCondition | None:
        queries = [Query(tags=(f"handle:{key}",)) for key in sorted(self.handle_keys)]
        queries += [Query(tags=(tag,), types=MEMBER_LIFECYCLE) for tag in sorted(self.merge_tags)]
        return AppendCondition(fail_if_events_match=tuple(queries), after=head) if queries else None

    async def load_handles(self, keys: Iterable[str]) -> None:
        """The events of each handle, then the members who hold them."""
        new = set(keys) - self.handle_keys
        if new:
            self.handle_keys |= new
            await self._read(Wanted(tags=[f"handle:{key}" for key in sorted(new)]))
        await self._load_members(self.known().handle_owners.values())

    async def load_for(self, commands: Sequence[c.Command]) -> None:
        handles = [h for cmd in commands for h in handles_of(cmd)]
        await self.load_handles(normalize_handle(h) for h in handles)
        streams = {stream for cmd in commands for stream in streams_of(cmd)}
        await self._load_streams(streams)
        known = self.known()
        members = {m for cmd in commands for m in members_of(cmd)}
        members |= {s.member_id for s in known.contributions.values()}
        members |= {m for s in known.recognitions.values() for m in (s.from_id, s.to_id)}
        await self._load_members(members)

    async def _load_members(self, member_ids: Iterable[UUID]) -> None:
        """Each member's stream, and the merges that name them from other members' streams."""
        new = sorted({m for m in member_ids if f"member-{m}" not in self.versions}, key=str)
        if not new:
            return
        tags = [f"member:{member_id}" for member_id in new]
        self.merge_tags.update(tags)
        await self._read(Wanted(streams=[f"member-{m}" for m in new], typed_tags=tags))

    async def _load_streams(self, streams: Collection[str]) -> None:
        new = sorted(set(streams) - self.versions.keys())
        if new:
            await self._read(Wanted(streams=new))

    async def _read(self, wanted: Wanted) -> None:
        rows = await read_state(self.ledger, wanted)
        versions = dict.fromkeys(wanted.streams, 0)
        for row in rows:
            if row.position not in self._events:
                self._events[row.position] = row.decode()
                self._known = None
            if row.stream in versions and row.stream_version > versions[row.stream]:
                versions[row.stream] = row.stream_version
        self.versions.update(versions)


def members_of(cmd: c.Command) -> list[UUID]:
    found: list[UUID] = []
    for field in (
        "member_id",
        "survivor_id",
        "duplicate_id",
        "introducer_id",
        "mentioned_id",
        "from_id",
        "to_id",
    ):
        value = getattr(cmd, field, None)
        if isinstance(value, UUID):
            found.append(value)
    found += list(getattr(cmd, "introduced_ids", ()))
    return found


def handles_of(cmd: c.Command) -> list[str]:
    if isinstance(cmd, c.RegisterMember):
        return list(cmd.handles)
    if isinstance(cmd, c.LinkHandle | c.UnlinkHandle):
        return [cmd.handle]
    return []


def streams_of(cmd: c.Command) -> list[str]:
    """Every stream the command's decision depends on or writes to."""
    streams = [f"member-{m}" for m in members_of(cmd)]
    for field, prefix in (
        ("contribution_id", "contribution"),
        ("reply_to", "contribution"),
        ("introduction_id", "introduction"),
        ("mention_id", "mention"),
        ("recognition_id", "recognition"),
    ):
        value = getattr(cmd, field, None)
        if isinstance(value, UUID):
            streams.append(f"{prefix}-{value}")
    return streams
