"""Member profiles: who a member is and what they have done, folded from the ledger.

Counts follow merges: a duplicate's history counts for its survivor, including
retractions and withdrawals recorded after the merge. Forgetting clears personal data
(name, handles, bio, links) of the member and of every duplicate merged into it, but
keeps the counts, which are not personal. Definitions: docs/projections.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import msgspec

from domain import events as e
from domain.errors import InvalidHandle
from domain.handles import normalize_handle
from domain.projections import Aliases, Entry, as_utc

NAME = "member_profiles"
VERSION = 2

# The windows of a member's status, which depends on the clock and so is not folded:
# services/queries/members.py computes it at read time.
NEWCOMER_DAYS = 30
ACTIVE_DAYS = 90
REGULAR_CONTRIBUTIONS = 5

COUNTERS = (
    "introductions_made",
    "introductions_received",
    "mentions_given",
    "mentions_received",
    "recognitions_given",
    "recognitions_received",
)


class Profile(msgspec.Struct, gc=False):
    """One row of the profiles table; fields in column order."""

    member_id: UUID
    display_name: str = ""
    handles: list[str] = []
    joined_at: datetime | None = None
    bio: str = ""
    links: list[str] = []
    first_active_at: datetime | None = None
    last_active_at: datetime | None = None
    contributions_total: int = 0
    contributions_by_kind: dict[str, int] = {}
    introductions_made: int = 0
    introductions_received: int = 0
    mentions_given: int = 0
    mentions_received: int = 0
    recognitions_given: int = 0
    recognitions_received: int = 0
    merged_into: UUID | None = None
    forgotten: bool = False
    updated_position: int = 0


class ContributionRef(msgspec.Struct, gc=False):
    """Enough of a contribution to undo it when it is retracted (the retraction names no kind)."""

    contribution_id: UUID
    member_id: UUID
    kind: str
    retracted: bool = False


@dataclass
class State:
    """The rows a batch touches; the fold changes them in place and notes which changed."""

    profiles: dict[UUID, Profile] = field(default_factory=dict)
    contributions: dict[UUID, ContributionRef] = field(default_factory=dict)
    aliases: Aliases = field(default_factory=Aliases)
    changed_profiles: set[UUID] = field(default_factory=set)
    changed_contributions: set[UUID] = field(default_factory=set)

    def row(self, member_id: UUID, position: int) -> Profile:
        """The member's own row, marked changed at `position`."""
        found = self.profiles.get(member_id)
        if found is None:
            found = self.profiles[member_id] = Profile(member_id=member_id)
        self.changed_profiles.add(member_id)
        found.updated_position = position
        return found

    def holder(self, member_id: UUID, position: int) -> Profile:
        """The row that counts the member's history: its survivor's, after a merge."""
        return self.row(self.aliases.resolve(member_id), position)


def members_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {m for entry in entries for m in e.member_ids_of(entry.event)}


def contributions_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {
        x.event.contribution_id for x in entries if isinstance(x.event, e.ContributionRetracted)
    }


def forgetting(entries: Iterable[Entry]) -> set[UUID]:
    """Where to start looking for duplicates a forget must clear (none if nobody is forgotten)."""
    entries = list(entries)
    if not any(isinstance(entry.event, e.MemberForgotten) for entry in entries):
        return set()
    return {
        m
        for entry in entries
        if isinstance(entry.event, e.MemberForgotten | e.MembersMerged)
        for m in e.member_ids_of(entry.event)
    }


def fold(state: State, entries: Iterable[Entry]) -> State:
    for entry in entries:
        apply(state, entry)
    return state


def apply(state: State, entry: Entry) -> None:
    event, at, position = entry.event, as_utc(entry.occurred_at), entry.position
    match event:
        case e.MemberRegistered(member_id=member_id, handles=handles):
            p = state.row(member_id, position)
            p.display_name, p.joined_at = event.display_name, as_utc(event.joined_at or at)
            p.handles = _with_handles(p.handles, handles)
        case e.MemberProfileUpdated(member_id=member_id, display_name=name, bio=bio):
            p = state.row(member_id, position)
            p.display_name = p.display_name if name is None else name
            p.bio = p.bio if bio is None else bio
            p.links = p.links if event.links is None else list(event.links)
        case e.HandleLinked(member_id=member_id, handle=handle) if handle:  # "" once erased
            p = state.row(member_id, position)
            p.handles = _with_handles(p.handles, (handle,))
        case e.HandleUnlinked(member_id=member_id, handle=handle) if handle:
            p = state.row(member_id, position)
            p.handles = [h for h in p.handles if _key(h) != _key(handle)]
        case e.MembersMerged():
            if moved := state.aliases.merge(event):
                duplicate, survivor = moved
                _merge(state.row(duplicate, position), state.row(survivor, position))
        case e.MemberForgotten(member_id=member_id):
            root = state.aliases.resolve(member_id)
            merged = [m for m in state.profiles if m != root and state.aliases.resolve(m) == root]
            for m in (root, *merged):
                p = state.row(m, position)
                p.display_name, p.handles, p.bio, p.links, p.forgotten = "", [], "", [], True
        case e.ContributionRecorded(contribution_id=cid, member_id=member_id, kind=kind):
            p = state.holder(member_id, position)
            p.contributions_total += 1
            p.contributions_by_kind[kind] = p.contributions_by_kind.get(kind, 0) + 1
            _active(p, at)
            state.contributions[cid] = ContributionRef(cid, member_id, kind)
            state.changed_contributions.add(cid)
        case e.ContributionRetracted(contribution_id=cid):
            ref = state.contributions.get(cid)
            if ref is None or ref.retracted:
                return
            ref.retracted = True
            state.changed_contributions.add(cid)
            p = state.holder(ref.member_id, position)
            p.contributions_total -= 1
            left = p.contributions_by_kind.pop(ref.kind, 0) - 1
            if left:
                p.contributions_by_kind[ref.kind] = left
        case e.IntroductionMade(introducer_id=introducer, introduced_ids=introduced):
            p = state.holder(introducer, position)
            p.introductions_made += 1
            _active(p, at)
            for member_id in dict.fromkeys(introduced):
                state.holder(member_id, position).introductions_received += 1
        case e.MentionRecorded(member_id=member_id, mentioned_id=mentioned):
            p = state.holder(member_id, position)
            p.mentions_given += 1
            _active(p, at)
            state.holder(mentioned, position).mentions_received += 1
        case e.RecognitionGiven(from_id=giver, to_id=receiver):
            p = state.holder(giver, position)
            p.recognitions_given += 1
            _active(p, at)
            state.holder(receiver, position).recognitions_received += 1
        case e.RecognitionWithdrawn(from_id=giver, to_id=receiver):
            state.holder(giver, position).recognitions_given -= 1
            state.holder(receiver, position).recognitions_received -= 1


def _key(handle: str) -> str:
    try:
        return normalize_handle(handle)
    except InvalidHandle:  # a stored handle the rules of today refuse: still one identity
        return handle.strip().lower()


def _with_handles(current: list[str], added: Iterable[str]) -> list[str]:
    keys = {_key(h) for h in current}
    result = list(current)
    for handle in added:
        if (key := _key(handle)) not in keys:
            keys.add(key)
            result.append(handle)
    return result


def _active(profile: Profile, at: datetime) -> None:
    if profile.first_active_at is None or at < profile.first_active_at:
        profile.first_active_at = at
    if profile.last_active_at is None or at > profile.last_active_at:
        profile.last_active_at = at


def _merge(duplicate: Profile, into: Profile) -> None:
    """The survivor takes the duplicate's counts, activity and handles; the duplicate points."""
    into.contributions_total += duplicate.contributions_total
    for kind, count in duplicate.contributions_by_kind.items():
        into.contributions_by_kind[kind] = into.contributions_by_kind.get(kind, 0) + count
    for name in COUNTERS:
        setattr(into, name, getattr(into, name) + getattr(duplicate, name))
        setattr(duplicate, name, 0)
    for moment in (duplicate.first_active_at, duplicate.last_active_at):
        if moment is not None:
            _active(into, moment)
    if duplicate.joined_at is not None and (
        into.joined_at is None or duplicate.joined_at < into.joined_at
    ):
        into.joined_at = duplicate.joined_at
    into.handles = _with_handles(into.handles, duplicate.handles)
    duplicate.contributions_total, duplicate.contributions_by_kind = 0, {}
    duplicate.first_active_at = duplicate.last_active_at = None
    duplicate.handles, duplicate.merged_into = [], into.member_id
