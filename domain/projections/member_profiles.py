"""Member profiles: who a member is and what they have done, folded from the ledger.

Counts follow merges: a duplicate's history counts for its survivor, including
retractions and withdrawals recorded after the merge. Forgetting clears personal data
(name, handles, bio, links) but keeps the counts, which are not personal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from domain import events as e
from domain.handles import normalize_handle
from domain.projections import Entry, survivor

NAME = "member_profiles"
VERSION = 1

NEWCOMER_DAYS = 30
ACTIVE_DAYS = 90
REGULAR_CONTRIBUTIONS = 5


@dataclass
class Profile:
    member_id: UUID
    display_name: str = ""
    handles: list[str] = field(default_factory=list)
    joined_at: datetime | None = None
    bio: str = ""
    links: list[str] = field(default_factory=list)
    first_active_at: datetime | None = None
    last_active_at: datetime | None = None
    contributions_total: int = 0
    contributions_by_kind: dict[str, int] = field(default_factory=dict)
    introductions_made: int = 0
    introductions_received: int = 0
    mentions_given: int = 0
    mentions_received: int = 0
    recognitions_given: int = 0
    recognitions_received: int = 0
    merged_into: UUID | None = None
    forgotten: bool = False
    updated_position: int = 0


@dataclass
class ContributionRef:
    """Enough of a contribution to undo it when it is retracted (the retraction names no kind)."""

    contribution_id: UUID
    member_id: UUID
    kind: str
    retracted: bool = False


@dataclass
class State:
    """The rows one batch touches; the fold changes them in place and marks them dirty."""

    profiles: dict[UUID, Profile] = field(default_factory=dict)
    contributions: dict[UUID, ContributionRef] = field(default_factory=dict)
    aliases: dict[UUID, UUID] = field(default_factory=dict)
    dirty_profiles: set[UUID] = field(default_factory=set)
    dirty_contributions: set[UUID] = field(default_factory=set)
    new_aliases: dict[UUID, UUID] = field(default_factory=dict)


def member_ids_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {m for entry in entries for m in e.member_ids_of(entry.event)}


def contribution_ids_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {
        entry.event.contribution_id
        for entry in entries
        if isinstance(entry.event, e.ContributionRetracted)
    }


def fold(state: State, entries: Iterable[Entry]) -> State:
    for entry in entries:
        apply(state, entry)
    return state


def apply(state: State, entry: Entry) -> None:
    event, at = entry.event, entry.occurred_at

    def profile(member_id: UUID) -> Profile:
        member_id = survivor(state.aliases, member_id)
        found = state.profiles.get(member_id)
        if found is None:
            found = state.profiles[member_id] = Profile(member_id=member_id)
        state.dirty_profiles.add(member_id)
        found.updated_position = entry.position
        return found

    match event:
        case e.MemberRegistered():
            p = profile(event.member_id)
            p.display_name, p.joined_at = event.display_name, event.joined_at or at
            p.handles = _with_handles(p.handles, event.handles)
        case e.MemberProfileUpdated():
            p = profile(event.member_id)
            if event.display_name is not None:
                p.display_name = event.display_name
            if event.bio is not None:
                p.bio = event.bio
            if event.links is not None:
                p.links = list(event.links)
        case e.HandleLinked(member_id=member_id, handle=handle):
            p = profile(member_id)
            p.handles = _with_handles(p.handles, (handle,))
        case e.HandleUnlinked(member_id=member_id, handle=handle):
            p = profile(member_id)
            key = normalize_handle(handle)
            p.handles = [h for h in p.handles if normalize_handle(h) != key]
        case e.MembersMerged(survivor_id=survivor_id, duplicate_id=duplicate_id):
            _merge(profile(duplicate_id), profile(survivor_id))
            state.aliases[duplicate_id] = state.new_aliases[duplicate_id] = survivor_id
        case e.MemberForgotten(member_id=member_id):
            p = profile(member_id)
            p.display_name, p.handles, p.bio, p.links, p.forgotten = "", [], "", [], True
        case e.ContributionRecorded(contribution_id=cid, member_id=member_id, kind=kind):
            p = profile(member_id)
            p.contributions_total += 1
            p.contributions_by_kind[kind] = p.contributions_by_kind.get(kind, 0) + 1
            _active(p, at)
            state.contributions[cid] = ContributionRef(
                contribution_id=cid, member_id=member_id, kind=kind
            )
            state.dirty_contributions.add(cid)
        case e.ContributionRetracted(contribution_id=cid):
            ref = state.contributions.get(cid)
            if ref is None or ref.retracted:
                return
            ref.retracted = True
            state.dirty_contributions.add(cid)
            p = profile(ref.member_id)
            p.contributions_total -= 1
            p.contributions_by_kind[ref.kind] = p.contributions_by_kind.get(ref.kind, 0) - 1
            if p.contributions_by_kind[ref.kind] == 0:
                del p.contributions_by_kind[ref.kind]
        case e.IntroductionMade(introducer_id=introducer, introduced_ids=introduced):
            p = profile(introducer)
            p.introductions_made += 1
            _active(p, at)
            for member_id in introduced:
                profile(member_id).introductions_received += 1
        case e.MentionRecorded(member_id=member_id, mentioned_id=mentioned):
            p = profile(member_id)
            p.mentions_given += 1
            _active(p, at)
            profile(mentioned).mentions_received += 1
        case e.RecognitionGiven(from_id=giver, to_id=receiver):
            p = profile(giver)
            p.recognitions_given += 1
            _active(p, at)
            profile(receiver).recognitions_received += 1
        case e.RecognitionWithdrawn(from_id=giver, to_id=receiver):
            profile(giver).recognitions_given -= 1
            profile(receiver).recognitions_received -= 1


def _with_handles(current: list[str], added: Iterable[str]) -> list[str]:
    keys = {normalize_handle(h) for h in current}
    result = list(current)
    for handle in added:
        if (key := normalize_handle(handle)) not in keys:
            keys.add(key)
            result.append(handle)
    return result


def _active(profile: Profile, at: datetime) -> None:
    if profile.first_active_at is None or at < profile.first_active_at:
        profile.first_active_at = at
    if profile.last_active_at is None or at > profile.last_active_at:
        profile.last_active_at = at


def _merge(duplicate: Profile, into: Profile) -> None:
    """Add the duplicate's counts to the survivor; the duplicate keeps a pointer, zeroed."""
    into.contributions_total += duplicate.contributions_total
    for kind, count in duplicate.contributions_by_kind.items():
        into.contributions_by_kind[kind] = into.contributions_by_kind.get(kind, 0) + count
    for name in (
        "introductions_made",
        "introductions_received",
        "mentions_given",
        "mentions_received",
        "recognitions_given",
        "recognitions_received",
    ):
        setattr(into, name, getattr(into, name) + getattr(duplicate, name))
        setattr(duplicate, name, 0)
    for moment in (duplicate.first_active_at, duplicate.last_active_at):
        if moment is not None:
            _active(into, moment)
    into.handles = _with_handles(into.handles, duplicate.handles)
    duplicate.handles, duplicate.contributions_total, duplicate.contributions_by_kind = [], 0, {}
    duplicate.merged_into = into.member_id


def member_status(
    first_active_at: datetime | None,
    last_active_at: datetime | None,
    recent_contributions: int,
    now: datetime,
) -> str:
    """CHAOSS-style activity status against fixed windows (docs/projections.md).

    newcomer: first active within the last 30 days; inactive: not active in the last 90
    days (or never); regular: 5 or more contributions in the last 90 days; occasional:
    active in the last 90 days with fewer.
    """
    if last_active_at is None or first_active_at is None:
        return "inactive"
    if now - last_active_at > timedelta(days=ACTIVE_DAYS):
        return "inactive"
    if now - first_active_at <= timedelta(days=NEWCOMER_DAYS):
        return "newcomer"
    return "regular" if recent_contributions >= REGULAR_CONTRIBUTIONS else "occasional"
