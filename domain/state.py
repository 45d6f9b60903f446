"""What the rules know about the ledger, folded from events.

The services layer builds `Known` by folding the events a command touches (a
member's stream, a handle's tagged events, a contribution's stream…); a batch
folds each command's events in before deciding the next, so later commands see
earlier ones. `Known` may be partial: the fold never assumes it saw everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from uuid import UUID

import msgspec

from domain.events import (
    ContributionRecorded,
    ContributionRetracted,
    Event,
    HandleLinked,
    HandleUnlinked,
    IntroductionMade,
    MemberForgotten,
    MemberProfileUpdated,
    MemberRegistered,
    MembersMerged,
    MentionRecorded,
    RecognitionGiven,
    RecognitionWithdrawn,
)
from domain.handles import normalize_handle

replace = msgspec.structs.replace

READS_PERSONAL = frozenset(
    {"MemberRegistered", "MemberProfileUpdated", "HandleLinked", "HandleUnlinked"}
)
"""The event types whose personal fields `fold` reads (names and handles). The others'
(a contribution's text, a reason, a note) never reach `Known`, so the store need not open
them to load state: they fold as an erased member's do (domain/personal.py's BLANKS)."""


class MemberState(msgspec.Struct, frozen=True, kw_only=True):
    member_id: UUID
    display_name: str
    handles: frozenset[str] = frozenset()  # keys, not display forms
    forgotten: bool = False
    merged_into: UUID | None = None


class ContributionState(msgspec.Struct, frozen=True, kw_only=True):
    contribution_id: UUID
    member_id: UUID
    retracted: bool = False


class RecognitionState(msgspec.Struct, frozen=True, kw_only=True):
    recognition_id: UUID
    from_id: UUID
    to_id: UUID
    withdrawn: bool = False


class Known(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot; `evolve` returns a new one and never changes this one's dicts."""

    members: dict[UUID, MemberState] = {}
    handle_owners: dict[str, UUID] = {}  # handle key -> the member who linked it
    contributions: dict[UUID, ContributionState] = {}
    recognitions: dict[UUID, RecognitionState] = {}
    introductions: AbstractSet[UUID] = frozenset()
    mentions: AbstractSet[UUID] = frozenset()
    duplicates: dict[UUID, tuple[UUID, ...]] = {}  # survivor -> the members merged into it

    @classmethod
    def empty(cls) -> Known:
        return cls()

    def survivor_of(self, member_id: UUID) -> UUID:
        """The member whose history now holds `member_id`'s (itself unless merged)."""
        seen = {member_id}
        state = self.members.get(member_id)
        while state is not None and state.merged_into is not None:
            member_id = state.merged_into
            if member_id in seen:  # a cycle cannot be recorded, but never loop on bad data
                break
            seen.add(member_id)
            state = self.members.get(member_id)
        return member_id

    def merged_into_it(self, member_id: UUID) -> list[UUID]:
        """The members merged into `member_id`, directly or down a chain, as far as known."""
        found = [member_id]
        for survivor in found:  # grows as it walks; a cycle cannot be recorded
            found += [d for d in self.duplicates.get(survivor, ()) if d not in found]
        return found[1:]

    def owner_of(self, handle_key: str) -> UUID | None:
        """Who holds a handle now, following merges."""
        owner = self.handle_owners.get(handle_key)
        return None if owner is None else self.survivor_of(owner)


def merged_in(member_id: UUID, merges: Iterable[MembersMerged]) -> list[UUID]:
    """`member_id`, then every member merged into it, directly or down a chain of merges.

    The survivor's history holds theirs: a merge joins histories, it moves no events.
    """
    duplicates: dict[UUID, list[UUID]] = {}
    for merge in merges:
        duplicates.setdefault(merge.survivor_id, []).append(merge.duplicate_id)
    found = [member_id]
    walked = 0
    while walked < len(found):  # a cycle cannot be recorded, but never loop on bad data
        found += [d for d in duplicates.get(found[walked], ()) if d not in found]
        walked += 1
    return found


def evolve(known: Known, event: Event) -> Known:
    """`known` with one more event applied."""
    return fold([event], known)


def fold(events: Iterable[Event], known: Known | None = None) -> Known:
    """Apply events in ledger order; copies each dict once, however many events."""
    start = known or Known.empty()
    draft = Folding(start)
    for event in events:
        draft.apply(event)
    return draft.freeze()


class Folding:
    """Mutable copies for the length of one fold, so folding n events costs O(n)."""

    def __init__(self, known: Known) -> None:
        self.members = dict(known.members)
        self.handle_owners = dict(known.handle_owners)
        self.contributions = dict(known.contributions)
        self.recognitions = dict(known.recognitions)
        self.introductions = set(known.introductions)
        self.mentions = set(known.mentions)
        self.duplicates = dict(known.duplicates)

    def freeze(self) -> Known:
        """The end of the fold: its dicts change no more; the sets are frozen copies."""
        return msgspec.structs.replace(
            self.view(),
            introductions=frozenset(self.introductions),
            mentions=frozenset(self.mentions),
        )

    def view(self) -> Known:
        """What has been folded so far, without copying: valid until the next `apply`.

        For deciding one command after another in a batch, where a frozen copy per
        command would cost the size of the whole state each time."""
        return Known(
            members=self.members,
            handle_owners=self.handle_owners,
            contributions=self.contributions,
            recognitions=self.recognitions,
            introductions=self.introductions,
            mentions=self.mentions,
            duplicates=self.duplicates,
        )

    def apply(self, event: Event) -> None:
        match event:
            case MemberRegistered(member_id=mid, display_name=name, handles=handles):
                keys = frozenset(normalize_handle(h) for h in handles)
                self.members[mid] = MemberState(member_id=mid, display_name=name, handles=keys)
                self.handle_owners.update(dict.fromkeys(keys, mid))
            case MemberProfileUpdated(member_id=mid, display_name=name) if name is not None:
                self._change(mid, display_name=name)
            # An erased member's handle folds as "" (domain/personal.py): nothing to hold.
            case HandleLinked(member_id=mid, handle=handle) if handle:
                key = normalize_handle(handle)
                self.handle_owners[key] = mid
                self._change_handles(mid, add=key)
            case HandleUnlinked(member_id=mid, handle=handle) if handle:
                key = normalize_handle(handle)
                previous = self.handle_owners.pop(key, None)
                for owner in {mid, previous}:
                    if owner is not None:
                        self._change_handles(owner, remove=key)
            case MembersMerged(survivor_id=survivor, duplicate_id=duplicate):
                self._merge(survivor, duplicate)
            case MemberForgotten(member_id=mid):
                # Handles are freed: with the key gone nothing can tell they were held
                # (docs/privacy.md), so the person may register again, as someone new.
                for key in [k for k, owner in self.handle_owners.items() if owner == mid]:
                    del self.handle_owners[key]
                self._change(mid, forgotten=True, display_name="", handles=frozenset())
            case ContributionRecorded(contribution_id=cid, member_id=mid):
                self.contributions[cid] = ContributionState(contribution_id=cid, member_id=mid)
            case ContributionRetracted(contribution_id=cid, member_id=mid):
                self.contributions[cid] = ContributionState(
                    contribution_id=cid, member_id=mid, retracted=True
                )
            case IntroductionMade(introduction_id=iid):
                self.introductions.add(iid)
            case MentionRecorded(mention_id=mid):
                self.mentions.add(mid)
            case RecognitionGiven(recognition_id=rid, from_id=giver, to_id=receiver):
                self.recognitions[rid] = RecognitionState(
                    recognition_id=rid, from_id=giver, to_id=receiver
                )
            case RecognitionWithdrawn(recognition_id=rid, from_id=giver, to_id=receiver):
                self.recognitions[rid] = RecognitionState(
                    recognition_id=rid, from_id=giver, to_id=receiver, withdrawn=True
                )

    def _change(self, member_id: UUID, **changes: object) -> None:
        if (state := self.members.get(member_id)) is not None:
            self.members[member_id] = replace(state, **changes)

    def _change_handles(self, member_id: UUID, add: str = "", remove: str = "") -> None:
        if (state := self.members.get(member_id)) is not None:
            handles = (state.handles | {add} if add else state.handles) - {remove}
            self.members[member_id] = replace(state, handles=handles)

    def _merge(self, survivor: UUID, duplicate: UUID) -> None:
        """The duplicate's handles now find the survivor."""
        if duplicate not in self.duplicates.get(survivor, ()):
            self.duplicates[survivor] = (*self.duplicates.get(survivor, ()), duplicate)
        moved = {key for key, owner in self.handle_owners.items() if owner == duplicate}
        if (state := self.members.get(duplicate)) is not None:
            moved |= state.handles
            self.members[duplicate] = replace(state, merged_into=survivor, handles=frozenset())
        self.handle_owners.update(dict.fromkeys(moved, survivor))
        if (target := self.members.get(survivor)) is not None:
            self.members[survivor] = replace(target, handles=target.handles | moved)
