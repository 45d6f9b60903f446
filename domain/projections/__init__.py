"""Projection folds: pure functions from ledger entries to read-model rows.

An applier (`services/projector/appliers/`) loads the rows a batch touches, a fold
here changes them in memory, and the applier writes back what changed. A fold keeps
nothing between batches but those rows, so any split of the ledger into batches ends
in the same tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from uuid import UUID

import msgspec

from domain.events import Event, MembersMerged


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger event as a fold sees it."""

    position: int
    occurred_at: datetime
    event: Event
    event_id: UUID | None = None
    """The envelope's id, for read models that point back at their events (None in tests
    that build entries by hand)."""


class Aliases:
    """Whose history a member's now counts for: duplicate -> survivor, chains followed."""

    def __init__(self, known: Mapping[UUID, UUID] | None = None) -> None:
        self.known: dict[UUID, UUID] = dict(known or {})
        self.added: dict[UUID, UUID] = {}
        """The merges this batch met: the applier saves them."""

    def resolve(self, member_id: UUID) -> UUID:
        if member_id not in self.known:  # the common case, kept cheap: folds call this a lot
            return member_id
        seen = {member_id}
        while (next_id := self.known.get(member_id)) is not None and next_id not in seen:
            member_id = next_id
            seen.add(member_id)
        return member_id

    def merge(self, event: MembersMerged) -> tuple[UUID, UUID] | None:
        """Record a merge; answer (duplicate, survivor) as they resolve, or None if already one."""
        duplicate, survivor = self.resolve(event.duplicate_id), self.resolve(event.survivor_id)
        if duplicate == survivor:
            return None
        # Keyed by the resolved duplicate, a root: the mapping can never form a cycle.
        self.known[duplicate] = self.added[duplicate] = survivor
        return duplicate, survivor

    def copy(self) -> Aliases:
        return Aliases(self.known)


def as_utc(at: datetime) -> datetime:
    """Naive moments (possible in stored payloads) are taken as UTC, so that all compare."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def utc_day(at: datetime) -> date:
    """The UTC calendar day of a moment."""
    return as_utc(at).astimezone(UTC).date()
