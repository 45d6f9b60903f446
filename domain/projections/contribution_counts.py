"""Contribution counts by member, kind, space and UTC day; queries sum them by week or month.

A retraction takes one back from the row its contribution was counted in (as that row
is keyed now: a merge moves a duplicate's rows onto its survivor). A count that
reaches zero leaves no row. The same counts summed over members (kind, space and day)
are kept beside them, for statistics that name no member: a month of a large community
then sums a few thousand rows, not one per member and day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

import msgspec

from domain import events as e
from domain.projections import Aliases, Entry, utc_day

NAME = "contribution_counts"
VERSION = 3

Key = tuple[UUID, str, str, date]
"""member, kind, space, day"""
DayKey = tuple[str, str, date]
"""kind, space, day: a `Key` without its member"""


class ContributionRef(msgspec.Struct, gc=False):
    """Where a contribution was counted, kept so that its retraction can find the row."""

    contribution_id: UUID
    member_id: UUID
    kind: str
    space: str
    day: date
    retracted: bool = False


@dataclass
class State:
    """The rows a batch touches; the fold changes them in place and notes what to write."""

    counts: dict[Key, int] = field(default_factory=dict)
    contributions: dict[UUID, ContributionRef] = field(default_factory=dict)
    aliases: Aliases = field(default_factory=Aliases)
    changed: set[Key] = field(default_factory=set)
    removed: set[Key] = field(default_factory=set)
    changed_contributions: set[UUID] = field(default_factory=set)
    day_changes: dict[DayKey, int] = field(default_factory=dict)
    """What the batch adds to each (kind, space, day) total: a merge's moves cancel out."""

    def count(self, key: Key, change: int) -> None:
        day = key[1:]
        self.day_changes[day] = self.day_changes.get(day, 0) + change
        left = self.counts.get(key, 0) + change
        if left:
            self.counts[key] = left
            self.changed.add(key)
            self.removed.discard(key)
        else:
            self.counts.pop(key, None)
            self.changed.discard(key)
            self.removed.add(key)


def contributions_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {
        x.event.contribution_id for x in entries if isinstance(x.event, e.ContributionRetracted)
    }


def members_needed(entries: Iterable[Entry], refs: Iterable[ContributionRef]) -> set[UUID]:
    named = {m for entry in entries for m in e.member_ids_of(entry.event)}
    return named | {ref.member_id for ref in refs}


def rows_needed(state: State, entries: Iterable[Entry]) -> tuple[set[Key], set[UUID]]:
    """The count rows the fold will read: by key, and all rows of members a merge moves."""
    aliases, refs = state.aliases.copy(), dict(state.contributions)
    keys: set[Key] = set()
    members: set[UUID] = set()
    for entry in entries:
        match entry.event:
            case e.ContributionRecorded(contribution_id=cid):
                refs[cid] = ref = _ref(entry, entry.event)
                keys.add(_key(aliases, ref))
            case e.ContributionRetracted(contribution_id=cid) if cid in refs:
                keys.add(_key(aliases, refs[cid]))
            case e.MembersMerged() as merged:
                members.update(aliases.merge(merged) or ())
    return keys, members


def fold(state: State, entries: Iterable[Entry]) -> State:
    for entry in entries:
        match entry.event:
            case e.ContributionRecorded(contribution_id=cid) as recorded:
                state.contributions[cid] = ref = _ref(entry, recorded)
                state.changed_contributions.add(cid)
                state.count(_key(state.aliases, ref), +1)
            case e.ContributionRetracted(contribution_id=cid):
                found = state.contributions.get(cid)
                if found is None or found.retracted:
                    continue
                found.retracted = True
                state.changed_contributions.add(cid)
                state.count(_key(state.aliases, found), -1)
            case e.MembersMerged() as merged:
                if moved := state.aliases.merge(merged):
                    _move(state, *moved)
    return state


def _ref(entry: Entry, event: e.ContributionRecorded) -> ContributionRef:
    return ContributionRef(
        event.contribution_id, event.member_id, event.kind, event.space, utc_day(entry.occurred_at)
    )


def _key(aliases: Aliases, ref: ContributionRef) -> Key:
    return (aliases.resolve(ref.member_id), ref.kind, ref.space, ref.day)


def _move(state: State, duplicate: UUID, survivor: UUID) -> None:
    """The duplicate's rows join the survivor's, summed where the keys meet."""
    for key in [key for key in state.counts if key[0] == duplicate]:
        count = state.counts[key]
        state.count(key, -count)
        state.count((survivor, key[1], key[2], key[3]), count)
