"""Interaction counts by member, fact and UTC day: what windowed leaderboards sum.

The facts are the member_profiles counters (introductions, mentions and recognitions,
made and received), kept per day so that a window is a range of rows, never a scan of
the ledger. As in contribution_counts, a withdrawal takes a recognition back from the
day it was given (on both sides, as they are keyed now), a merge moves the duplicate's
rows onto its survivor, and a count that reaches zero leaves no row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

import msgspec

from domain import events as e
from domain.projections import Aliases, Entry, utc_day

NAME = "interaction_counts"
VERSION = 1

FACTS = (
    "introductions_made",
    "introductions_received",
    "mentions_given",
    "mentions_received",
    "recognitions_given",
    "recognitions_received",
)

Key = tuple[UUID, str, date]
"""member, fact, day"""

Fact = tuple[UUID, str]
"""a member (as the event names them) and a fact"""


class RecognitionRef(msgspec.Struct, gc=False):
    """Where a recognition was counted, kept so that its withdrawal can find the day."""

    recognition_id: UUID
    from_id: UUID
    to_id: UUID
    day: date
    withdrawn: bool = False


@dataclass
class State:
    """The rows a batch touches; the fold changes them in place and notes what to write."""

    counts: dict[Key, int] = field(default_factory=dict)
    recognitions: dict[UUID, RecognitionRef] = field(default_factory=dict)
    aliases: Aliases = field(default_factory=Aliases)
    changed: set[Key] = field(default_factory=set)
    removed: set[Key] = field(default_factory=set)
    changed_recognitions: set[UUID] = field(default_factory=set)

    def count(self, key: Key, change: int) -> None:
        left = self.counts.get(key, 0) + change
        if left:
            self.counts[key] = left
            self.changed.add(key)
            self.removed.discard(key)
        else:
            self.counts.pop(key, None)
            self.changed.discard(key)
            self.removed.add(key)


def facts_of(event: e.Event) -> list[Fact]:
    """What an event counts, once per member and fact (as member_profiles counts it)."""
    match event:
        case e.IntroductionMade(introducer_id=introducer, introduced_ids=introduced):
            received = [(m, "introductions_received") for m in dict.fromkeys(introduced)]
            return [(introducer, "introductions_made"), *received]
        case e.MentionRecorded(member_id=member_id, mentioned_id=mentioned):
            return [(member_id, "mentions_given"), (mentioned, "mentions_received")]
        case e.RecognitionGiven(from_id=giver, to_id=receiver):
            return [(giver, "recognitions_given"), (receiver, "recognitions_received")]
    return []


def recognitions_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {x.event.recognition_id for x in entries if isinstance(x.event, e.RecognitionWithdrawn)}


def rows_needed(state: State, entries: Iterable[Entry]) -> tuple[set[Key], set[UUID]]:
    """The count rows the fold will read: by key, and all rows of members a merge moves."""
    aliases, refs = state.aliases.copy(), dict(state.recognitions)
    keys: set[Key] = set()
    members: set[UUID] = set()
    for entry in entries:
        match entry.event:
            case e.MembersMerged() as merged:
                members.update(aliases.merge(merged) or ())
            case e.RecognitionWithdrawn(recognition_id=rid) if rid in refs:
                keys.update(_keys(aliases, _given(refs[rid]), refs[rid].day))
            case e.RecognitionGiven(recognition_id=rid) as given:
                refs[rid] = _ref(entry, given)
        keys.update(_keys(aliases, facts_of(entry.event), utc_day(entry.occurred_at)))
    return keys, members


def fold(state: State, entries: Iterable[Entry]) -> State:
    for entry in entries:
        match entry.event:
            case e.MembersMerged() as merged:
                if moved := state.aliases.merge(merged):
                    _move(state, *moved)
                continue
            case e.RecognitionGiven(recognition_id=rid) as given:
                state.recognitions[rid] = _ref(entry, given)
                state.changed_recognitions.add(rid)
            case e.RecognitionWithdrawn(recognition_id=rid):
                found = state.recognitions.get(rid)
                if found is None or found.withdrawn:
                    continue
                found.withdrawn = True
                state.changed_recognitions.add(rid)
                for key in _keys(state.aliases, _given(found), found.day):
                    state.count(key, -1)
                continue
        for key in _keys(state.aliases, facts_of(entry.event), utc_day(entry.occurred_at)):
            state.count(key, +1)
    return state


def _ref(entry: Entry, event: e.RecognitionGiven) -> RecognitionRef:
    return RecognitionRef(
        event.recognition_id, event.from_id, event.to_id, utc_day(entry.occurred_at)
    )


def _given(ref: RecognitionRef) -> list[Fact]:
    return [(ref.from_id, "recognitions_given"), (ref.to_id, "recognitions_received")]


def _keys(aliases: Aliases, facts: list[Fact], day: date) -> list[Key]:
    return [(aliases.resolve(member_id), fact, day) for member_id, fact in facts]


def _move(state: State, duplicate: UUID, survivor: UUID) -> None:
    """The duplicate's rows join the survivor's, summed where the keys meet."""
    for key in [key for key in state.counts if key[0] == duplicate]:
        count = state.counts[key]
        state.count(key, -count)
        state.count((survivor, key[1], key[2]), count)
