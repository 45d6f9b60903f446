"""The one path for every write: load what the rules need, let the domain decide, append.

The API, the importers and the CLI all come through `CommandHandler.execute`, so a rule,
an idempotency key or a batch behaves the same wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from domain import commands as c
from domain.codec import encode_payload
from domain.errors import (
    AppendConditionFailed,
    IdempotencyKeyReused,
    UnknownHandles,
    WrongExpectedVersion,
)
from domain.events import Event, stream_of, tags_of, type_name
from domain.handles import normalize_handle, parse_handle
from domain.ids import new_id
from domain.rules import decide_each
from domain.state import Known, fold
from services.store.ledger import (
    AppendCondition,
    Appended,
    Ledger,
    NewEvent,
    Query,
    RecordedEvent,
)

RETRIES_ON_CONFLICT = 3
MEMBER_LIFECYCLE = ("MembersMerged",)


class Submission(msgspec.Struct, frozen=True, kw_only=True):
    """A command with the envelope facts the caller knows (imports carry their own dates)."""

    command: c.Command
    occurred_at: datetime | None = None


class Resolver:
    """Turns member references (an id, or a `platform:handle`) into member ids.

    With `register_unknown`, an unknown handle gets a new member, registered in the
    same append as the commands that name it.
    """

    def __init__(self, known: Known) -> None:
        self.known = known
        self.registrations: list[c.RegisterMember] = []
        self.planned: list[c.RegisterMember] = []
        """Registrations the plan itself makes, so later commands can name their handles."""

    def member(
        self, reference: str, *, register_unknown: bool = False, display_name: str | None = None
    ) -> UUID:
        try:
            return UUID(reference)
        except ValueError:
            pass
        handle = parse_handle(reference)
        owner = self.known.owner_of(handle.key)
        if owner is not None:
            return owner
        for registration in (*self.registrations, *self.planned):
            if any(normalize_handle(h) == handle.key for h in registration.handles):
                return registration.member_id
        if not register_unknown:
            raise UnknownHandles([handle.display])
        registration = c.RegisterMember(
            member_id=new_id(),
            display_name=display_name or handle.name.lstrip("@"),
            handles=(handle.display,),
        )
        self.registrations.append(registration)
        return registration.member_id


Plan = Callable[[Resolver], Sequence[Submission]]


class CommandHandler:
    def __init__(self, ledger: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.ledger = ledger
        self.clock = clock or (lambda: datetime.now(UTC))

    async def execute(
        self,
        plan: Plan,
        *,
        handles: Iterable[str] = (),
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        metadata: dict[str, Any] | None = None,
        expected_versions: dict[str, int] | None = None,
    ) -> Appended:
        """Run `plan` against fresh state and append what the rules decide, atomically.

        `handles` names the handles `plan` will resolve, so their owners are loaded first.
        A conflict with a concurrent writer re-runs the plan on the new state, a few times;
        a conflict with the caller's own `expected_versions` does not (it is theirs to resolve).
        """
        if idempotency_key is not None:
            stored = await self.ledger.recall(idempotency_key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(idempotency_key)
                return stored.answer
        handle_keys = {normalize_handle(handle) for handle in handles}
        for attempt in range(RETRIES_ON_CONFLICT + 1):
            try:
                return await self._attempt(
                    plan,
                    handle_keys,
                    idempotency_key,
                    fingerprint,
                    metadata or {},
                    expected_versions or {},
                )
            except (WrongExpectedVersion, AppendConditionFailed) as conflict:
                theirs = isinstance(conflict, WrongExpectedVersion) and conflict.stream in (
                    expected_versions or {}
                )
                if theirs or attempt == RETRIES_ON_CONFLICT:
                    raise
        raise AssertionError("unreachable")

    async def _attempt(
        self,
        plan: Plan,
        handle_keys: set[str],
        idempotency_key: str | None,
        fingerprint: str | None,
        metadata: dict[str, Any],
        expected_versions: dict[str, int],
    ) -> Appended:
        head = await self.ledger.head()
        loader = _Loader(self.ledger)
        await loader.load_handles(handle_keys)
        resolver = Resolver(loader.known())
        submissions = list(plan(resolver))
        commands = [*resolver.registrations, *(s.command for s in submissions)]
        await loader.load_for(commands)
        for stream, expected in expected_versions.items():
            actual = loader.versions.get(stream)
            if actual is not None and actual != expected:
                raise WrongExpectedVersion(stream, expected, actual)
        decided = decide_each(commands, loader.known())
        now = self.clock()
        dates = [None] * len(resolver.registrations) + [s.occurred_at for s in submissions]
        first_date = next((d for d in dates if d is not None), now)
        new_events = [
            _new_event(event, when or first_date, metadata)
            for events, when in zip(decided, dates, strict=True)
            for event in events
        ]
        return await self.ledger.append(
            new_events,
            expected_versions={**loader.versions, **expected_versions},
            condition=loader.condition(head),
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )


def _new_event(event: Event, occurred_at: datetime, metadata: dict[str, Any]) -> NewEvent:
    return NewEvent(
        event_id=new_id(),
        type=type_name(event),
        schema_version=event.SCHEMA_VERSION,
        data=msgspec.Raw(encode_payload(event)),
        stream=stream_of(event),
        tags=tags_of(event),
        occurred_at=occurred_at,
        metadata=metadata,
    )


class _Loader:
    """Reads the streams and tags the rules need, remembering versions for the append."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.records: dict[int, RecordedEvent] = {}
        self.versions: dict[str, int] = {}
        self.handle_keys: set[str] = set()
        self.merge_tags: set[str] = set()

    def known(self) -> Known:
        ordered = sorted(self.records.values(), key=lambda r: r.position)
        return fold(record.decode() for record in ordered)

    def condition(self, head: int) -> AppendCondition | None:
        queries = [Query(tags=(f"handle:{key}",)) for key in sorted(self.handle_keys)]
        queries += [Query(tags=(tag,), types=MEMBER_LIFECYCLE) for tag in sorted(self.merge_tags)]
        return AppendCondition(fail_if_events_match=tuple(queries), after=head) if queries else None

    async def load_handles(self, keys: Iterable[str]) -> None:
        for key in set(keys) - self.handle_keys:
            self.handle_keys.add(key)
            self._keep(await self.ledger.read_tagged(f"handle:{key}", limit=1000))
        await self._load_members(self.known().handle_owners.values())

    async def load_for(self, commands: Sequence[c.Command]) -> None:
        handles = [h for cmd in commands for h in _handles_of(cmd)]
        await self.load_handles(normalize_handle(h) for h in handles)
        for cmd in commands:
            for stream in _streams_of(cmd):
                await self._load_stream(stream)
        known = self.known()
        members = {m for cmd in commands for m in _members_of(cmd)}
        members |= {s.member_id for s in known.contributions.values()}
        members |= {m for s in known.recognitions.values() for m in (s.from_id, s.to_id)}
        await self._load_members(members)

    async def _load_members(self, member_ids: Iterable[UUID]) -> None:
        for member_id in member_ids:
            if f"member-{member_id}" in self.versions:
                continue
            await self._load_stream(f"member-{member_id}")
            tag = f"member:{member_id}"
            self.merge_tags.add(tag)
            self._keep(await self.ledger.read_tagged(tag, types=MEMBER_LIFECYCLE))

    async def _load_stream(self, stream: str) -> None:
        if stream in self.versions:
            return
        records = await self.ledger.read_stream(stream)
        self.versions[stream] = records[-1].stream_version if records else 0
        self._keep(records)

    def _keep(self, records: Iterable[RecordedEvent]) -> None:
        for record in records:
            self.records[record.position] = record


def _members_of(cmd: c.Command) -> list[UUID]:
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


def _handles_of(cmd: c.Command) -> list[str]:
    if isinstance(cmd, c.RegisterMember):
        return list(cmd.handles)
    if isinstance(cmd, c.LinkHandle | c.UnlinkHandle):
        return [cmd.handle]
    return []


def _streams_of(cmd: c.Command) -> list[str]:
    """Every stream the command's decision depends on or writes to."""
    streams = [f"member-{m}" for m in _members_of(cmd)]
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


async def execute_commands(handler: CommandHandler, commands: Sequence[c.Command]) -> Appended:
    """A plan of plain commands (no handles to resolve), for the CLI and tests."""
    return await handler.execute(lambda _: [Submission(command=cmd) for cmd in commands])
