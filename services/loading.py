"""What the rules need for a batch of commands: the handler's loader.

It walks the same steps for one command or five hundred (handles → their owners → the
commands' streams → the members those name), and asks the store for each step at once
(`services.store.state`), so a chunk of an import costs a handful of round trips.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from uuid import UUID

from domain import commands as c
from domain.events import Event
from domain.handles import normalize_handle
from domain.state import Known, fold
from domain.streams import (
    contribution_stream,
    handle_tag,
    introduction_stream,
    member_stream,
    member_tag,
    mention_stream,
    recognition_stream,
)
from services.store.ledger import Ledger
from services.store.records import AppendCondition, Query
from services.store.state import MEMBER_LIFECYCLE, Row, Wanted


async def read_state(ledger: Ledger, wanted: Wanted) -> list[Row]:
    """Every read a `Loader` makes goes through here (a dry run's ledger answers it too)."""
    return await ledger.read_state(wanted)


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
        queries = [Query(tags=(handle_tag(key),)) for key in sorted(self.handle_keys)]
        queries += [Query(tags=(tag,), types=MEMBER_LIFECYCLE) for tag in sorted(self.merge_tags)]
        return AppendCondition(fail_if_events_match=tuple(queries), after=head) if queries else None

    async def load_handles(self, keys: Iterable[str]) -> None:
        """The events of each handle, then the members who hold them."""
        new = set(keys) - self.handle_keys
        if new:
            self.handle_keys |= new
            await self._read(Wanted(tags=[handle_tag(key) for key in sorted(new)]))
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
        await self._load_duplicates(
            [cmd.member_id for cmd in commands if isinstance(cmd, c.ForgetMember)]
        )

    async def _load_duplicates(self, member_ids: Sequence[UUID]) -> None:
        """An erasure forgets the members merged into it too: walk their chains of merges.

        The erased member's stream may be loaded already without the merges that name it."""
        walked: set[UUID] = set()
        frontier = set(member_ids)
        while frontier:
            tags = sorted(member_tag(m) for m in frontier if member_tag(m) not in self.merge_tags)
            if tags:
                self.merge_tags.update(tags)
                await self._read(Wanted(typed_tags=tags))
            walked |= frontier
            duplicates = {d for m in member_ids for d in self.known().merged_into_it(m)}
            await self._load_members(duplicates)
            frontier = duplicates - walked

    async def _load_members(self, member_ids: Iterable[UUID]) -> None:
        """Each member's stream, and the merges that name them from other members' streams."""
        new = sorted({m for m in member_ids if member_stream(m) not in self.versions}, key=str)
        if not new:
            return
        tags = [member_tag(member_id) for member_id in new]
        self.merge_tags.update(tags)
        await self._read(Wanted(streams=[member_stream(m) for m in new], typed_tags=tags))

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
    streams = [member_stream(m) for m in members_of(cmd)]
    for field, stream in (
        ("contribution_id", contribution_stream),
        ("reply_to", contribution_stream),
        ("introduction_id", introduction_stream),
        ("mention_id", mention_stream),
        ("recognition_id", recognition_stream),
    ):
        value = getattr(cmd, field, None)
        if isinstance(value, UUID):
            streams.append(stream(value))
    return streams
