"""The member rules: who a member is (registration, profile, handles) and when a member
stops taking events of their own (a merge into another member, an erasure).

Split from `domain.rules`, which decides every command and holds the activity rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from domain import checks, limits
from domain.commands import (
    ForgetMember,
    LinkHandle,
    MergeMembers,
    RegisterMember,
    UnlinkHandle,
    UpdateProfile,
)
from domain.errors import (
    HandleAlreadyClaimed,
    HandleNotLinked,
    InvalidField,
    MemberAlreadyRegistered,
    SelfMerge,
)
from domain.events import (
    Event,
    HandleLinked,
    HandleUnlinked,
    MemberForgotten,
    MemberProfileUpdated,
    MemberRegistered,
    MembersMerged,
)
from domain.handles import Handle, claimable_handle, parse_handle
from domain.state import Known


def register_member(cmd: RegisterMember, known: Known) -> list[Event]:
    if cmd.member_id in known.members:
        raise MemberAlreadyRegistered(cmd.member_id)
    name = checks.display_name(cmd.display_name)
    handles = _unique(claimable_handle(raw) for raw in cmd.handles)
    if len(handles) > limits.MAX_HANDLES:
        raise InvalidField(
            "handles", f"a member holds at most {limits.MAX_HANDLES} handles, got {len(handles)}"
        )
    for handle in handles:
        _require_unclaimed(known, handle, cmd.member_id)
    displays = tuple(handle.display for handle in handles)
    return [
        MemberRegistered(
            member_id=cmd.member_id, display_name=name, handles=displays, joined_at=cmd.joined_at
        )
    ]


def update_profile(cmd: UpdateProfile, known: Known) -> list[Event]:
    checks.require_active(known, [cmd.member_id])
    if cmd.display_name is None and cmd.bio is None and cmd.links is None:
        raise InvalidField("profile", "give at least one of display_name, bio, links")
    name = None if cmd.display_name is None else checks.display_name(cmd.display_name)
    return [
        MemberProfileUpdated(
            member_id=cmd.member_id,
            display_name=name,
            bio=None if cmd.bio is None else checks.limit("bio", cmd.bio, limits.MAX_BIO),
            links=None if cmd.links is None else checks.links(cmd.links),
        )
    ]


def link_handle(cmd: LinkHandle, known: Known) -> list[Event]:
    """Linking a handle the member already holds is a no-op, so retries are harmless."""
    checks.require_active(known, [cmd.member_id])
    handle = claimable_handle(cmd.handle)
    if known.owner_of(handle.key) == cmd.member_id:
        return []
    _require_unclaimed(known, handle, cmd.member_id)
    if len(known.members[cmd.member_id].handles) >= limits.MAX_HANDLES:
        raise InvalidField(
            "add_handles", f"a member holds at most {limits.MAX_HANDLES} handles; unlink one first"
        )
    return [HandleLinked(member_id=cmd.member_id, handle=handle.display)]


def unlink_handle(cmd: UnlinkHandle, known: Known) -> list[Event]:
    checks.require_active(known, [cmd.member_id])
    handle = parse_handle(cmd.handle)
    if known.owner_of(handle.key) != cmd.member_id:
        raise HandleNotLinked(handle.display, cmd.member_id)
    return [HandleUnlinked(member_id=cmd.member_id, handle=handle.display)]


def merge_members(cmd: MergeMembers, known: Known) -> list[Event]:
    checks.require_registered(known, [cmd.survivor_id, cmd.duplicate_id])
    if cmd.survivor_id == cmd.duplicate_id:
        raise SelfMerge(cmd.survivor_id)
    checks.require_active(known, [cmd.duplicate_id, cmd.survivor_id])
    return [MembersMerged(survivor_id=cmd.survivor_id, duplicate_id=cmd.duplicate_id)]


def forget_member(cmd: ForgetMember, known: Known) -> list[Event]:
    """The member and every duplicate merged into it, each its own event (each has its key).

    Forgetting twice decides nothing: an erasure is retried until it is known to have
    happened. A merged duplicate is refused: erasure belongs on the survivor, which holds
    its history."""
    checks.require_registered(known, [cmd.member_id])
    if known.members[cmd.member_id].forgotten:
        return []
    checks.require_active(known, [cmd.member_id])
    reason = checks.limit("reason", cmd.reason, limits.MAX_NOTE)
    duplicates = known.merged_into_it(cmd.member_id)
    checks.require_registered(known, duplicates)
    return [
        MemberForgotten(member_id=cmd.member_id, reason=reason),
        *(MemberForgotten(member_id=d) for d in duplicates if not known.members[d].forgotten),
    ]


def _unique(handles: Iterable[Handle]) -> list[Handle]:
    """One handle per key; the first spelling wins."""
    unique: dict[str, Handle] = {}
    for handle in handles:
        unique.setdefault(handle.key, handle)
    return list(unique.values())


def _require_unclaimed(known: Known, handle: Handle, member_id: UUID) -> None:
    owner = known.owner_of(handle.key)
    if owner is not None and owner != member_id:
        raise HandleAlreadyClaimed(handle.display, owner)
