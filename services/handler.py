"""The one path for every write: load what the rules need, let the domain decide, append.

The API, the importers and the CLI all come through `CommandHandler.execute`, so a rule,
an idempotency key or a batch behaves the same wherever it comes from.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec

from domain import commands as c
from domain import hygiene
from domain.codec import encode_payload
from domain.errors import (
    AppendConditionFailed,
    IdempotencyKeyReused,
    InvalidHandle,
    UnknownHandles,
    WrongExpectedVersion,
)
from domain.events import Event, stream_of, tags_of, type_name
from domain.handles import normalize_handle, parse_handle
from domain.ids import new_id
from domain.rules import decide_each
from domain.state import Known
from services.loading import Loader
from services.store.ledger import Ledger
from services.store.records import Appended, NewEvent

RETRIES_ON_CONFLICT = 3
OFF_LOOP_ABOVE = 50
"""Commands (or handles) beyond which deciding runs in a thread: a batch of a thousand
registrations is CPU work that would stall every other request on the event loop."""

T = TypeVar("T")


async def _cpu(work: Callable[[], T], size: int) -> T:
    """`work()` here when small, in a worker thread when large (the loop keeps answering)."""
    return await asyncio.to_thread(work) if size > OFF_LOOP_ABOVE else work()


class Reference(msgspec.Struct, frozen=True, kw_only=True):
    """A member named by a handle, to be found in fresh state (or registered, if asked)."""

    handle: str
    register_unknown: bool = False
    display_name: str | None = None
    """The name a member registered for an unknown handle gets; the handle's name if None."""


class Submission(msgspec.Struct, frozen=True, kw_only=True):
    """A command with the envelope facts the caller knows (imports carry their own dates).

    `references` maps stand-in ids in `command` to the handles they name: the handler
    swaps in the members' ids once it has loaded who holds those handles.
    """

    command: c.Command
    occurred_at: datetime | None = None
    references: dict[UUID, Reference] = {}


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
        self._registered: dict[str, UUID] = {}  # handle key -> member, for both lists
        self._planned: dict[str, UUID] = {}

    def plan(self, registration: c.RegisterMember) -> None:
        """Note a registration the plan makes, so later commands can name its handles."""
        self.planned.append(registration)
        for raw in registration.handles:
            with contextlib.suppress(InvalidHandle):  # the loader names it, before the rules run
                self._planned.setdefault(normalize_handle(raw), registration.member_id)

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
        found = self._registered.get(handle.key) or self._planned.get(handle.key)
        if found is not None:
            return found
        if not register_unknown:
            raise UnknownHandles([handle.display])
        registration = c.RegisterMember(
            member_id=new_id(),
            display_name=display_name or handle.name.lstrip("@"),
            handles=(handle.display,),
        )
        self.registrations.append(registration)
        self._registered[handle.key] = registration.member_id
        return registration.member_id


Plan = Callable[[Resolver], Sequence[Submission]]
"""Submissions made while resolving: for callers that resolve names of their own first."""


def resolve(submissions: Iterable[Submission], resolver: Resolver) -> list[Submission]:
    """Each submission with its stand-in ids swapped for members, in order, so an item sees
    the members the items before it register."""
    resolved = []
    for submission in submissions:
        ids = {
            standin: resolver.member(
                ref.handle, register_unknown=ref.register_unknown, display_name=ref.display_name
            )
            for standin, ref in submission.references.items()
        }
        command = _swap(submission.command, ids) if ids else submission.command
        if isinstance(command, c.RegisterMember):
            resolver.plan(command)
        resolved.append(Submission(command=command, occurred_at=submission.occurred_at))
    return resolved


def _swap(command: c.Command, ids: dict[UUID, UUID]) -> c.Command:
    changes: dict[str, Any] = {}
    for name in command.__struct_fields__:
        value = getattr(command, name)
        if isinstance(value, UUID) and value in ids:
            changes[name] = ids[value]
        elif isinstance(value, tuple) and any(v in ids for v in value):
            changes[name] = tuple(ids.get(v, v) for v in value)
    return msgspec.structs.replace(command, **changes)


class CommandHandler:
    def __init__(self, ledger: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.ledger = ledger
        self.clock = clock or (lambda: datetime.now(UTC))

    async def execute(
        self,
        plan: Plan | Sequence[Submission],
        *,
        handles: Iterable[str] = (),
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
        metadata: dict[str, Any] | None = None,
        expected_versions: dict[str, int] | None = None,
    ) -> Appended:
        """Resolve `plan` against fresh state and append what the rules decide, atomically.

        `handles` names the handles a `Plan` will resolve (submissions name theirs), so
        their owners are loaded first.
        A conflict with a concurrent writer re-runs the plan on the new state, a few times;
        a conflict with the caller's own `expected_versions` does not (it is theirs to resolve).
        """
        if idempotency_key is not None:
            stored = await self.ledger.recall(idempotency_key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    raise IdempotencyKeyReused(idempotency_key)
                return stored.answer
        if not callable(plan):
            plan = list(plan)
            handles = [*handles, *(r.handle for s in plan for r in s.references.values())]
        handles = list(handles)
        handle_keys = await _cpu(lambda: {normalize_handle(h) for h in handles}, len(handles))
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
        plan: Plan | list[Submission],
        handle_keys: set[str],
        idempotency_key: str | None,
        fingerprint: str | None,
        metadata: dict[str, Any],
        expected_versions: dict[str, int],
    ) -> Appended:
        head = await self.ledger.head()
        loader = Loader(self.ledger)
        await loader.load_handles(handle_keys)
        resolver = Resolver(loader.known())
        submissions = list(plan(resolver)) if callable(plan) else resolve(plan, resolver)
        commands = [*resolver.registrations, *(s.command for s in submissions)]
        now = self.clock()
        dates = [None] * len(resolver.registrations) + [s.occurred_at for s in submissions]
        dates = await _cpu(lambda: _clean(commands, dates, now), len(commands))
        await loader.load_for(commands)
        for stream, expected in expected_versions.items():
            actual = loader.versions.get(stream)
            if actual is not None and actual != expected:
                raise WrongExpectedVersion(stream, expected, actual)

        def decide() -> list[NewEvent]:
            decided = decide_each(commands, loader.known())
            first_date = next((d for d in dates if d is not None), now)
            return [
                _new_event(event, when or first_date, metadata)
                for events, when in zip(decided, dates, strict=True)
                for event in events
            ]

        new_events = await _cpu(decide, len(commands))
        return await self.ledger.append(
            new_events,
            expected_versions={**loader.versions, **expected_versions},
            condition=loader.condition(head),
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )


def _clean(
    commands: Sequence[c.Command], dates: Sequence[datetime | None], now: datetime
) -> list[datetime | None]:
    """Refuse text PostgreSQL cannot store and dates out of bounds, before any is read or
    written (importers get a rejected line, the API a 422); the dates, each with a zone."""
    for index, command in enumerate(commands):
        try:
            hygiene.require_storable(command)
            if isinstance(command, c.RegisterMember) and command.joined_at is not None:
                hygiene.require_moment("joined_at", command.joined_at, now)
        except Exception as error:
            error.add_note(f"in command {index} of the batch ({type(command).__name__})")
            raise
    return [None if d is None else hygiene.require_moment("occurred_at", d, now) for d in dates]


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


async def execute_commands(handler: CommandHandler, commands: Sequence[c.Command]) -> Appended:
    """A plan of plain commands (no handles to resolve), for the CLI and tests."""
    return await handler.execute(lambda _: [Submission(command=cmd) for cmd in commands])
