"""What callers ask the ledger to do; `domain.rules.decide` turns each into events or an error.

Members are referenced by id: the services layer resolves handles before deciding,
so the rules never guess who someone is. Tags are explicit, as for events, so a
batch request can carry a tagged list of commands.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class Command(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """A request to change the ledger; it may be refused."""


class RegisterMember(Command, frozen=True, tag="RegisterMember"):
    member_id: UUID
    display_name: str
    handles: tuple[str, ...] = ()
    joined_at: datetime | None = None


class UpdateProfile(Command, frozen=True, tag="UpdateProfile"):
    """Fields left as None stay as they are."""

    member_id: UUID
    display_name: str | None = None
    bio: str | None = None
    links: tuple[str, ...] | None = None


class LinkHandle(Command, frozen=True, tag="LinkHandle"):
    member_id: UUID
    handle: str


class UnlinkHandle(Command, frozen=True, tag="UnlinkHandle"):
    member_id: UUID
    handle: str


class MergeMembers(Command, frozen=True, tag="MergeMembers"):
    survivor_id: UUID
    duplicate_id: UUID


class ForgetMember(Command, frozen=True, tag="ForgetMember"):
    member_id: UUID
    reason: str = ""


class RecordContribution(Command, frozen=True, tag="RecordContribution"):
    contribution_id: UUID
    member_id: UUID
    kind: str
    space: str
    title: str = ""
    body: str = ""
    url: str = ""
    attributes: dict[str, str] = {}
    reply_to: UUID | None = None


class RetractContribution(Command, frozen=True, tag="RetractContribution"):
    contribution_id: UUID
    reason: str = ""


class MakeIntroduction(Command, frozen=True, tag="MakeIntroduction"):
    introduction_id: UUID
    introducer_id: UUID
    introduced_ids: tuple[UUID, ...]
    note: str = ""
    space: str = ""


class RecordMention(Command, frozen=True, tag="RecordMention"):
    mention_id: UUID
    member_id: UUID
    mentioned_id: UUID
    contribution_id: UUID | None = None
    space: str = ""


class GiveRecognition(Command, frozen=True, tag="GiveRecognition"):
    recognition_id: UUID
    from_id: UUID
    to_id: UUID
    kind: str
    reason: str = ""
    contribution_id: UUID | None = None
    space: str = ""


class WithdrawRecognition(Command, frozen=True, tag="WithdrawRecognition"):
    recognition_id: UUID
    reason: str = ""


AnyCommand = (
    RegisterMember
    | UpdateProfile
    | LinkHandle
    | UnlinkHandle
    | MergeMembers
    | ForgetMember
    | RecordContribution
    | RetractContribution
    | MakeIntroduction
    | RecordMention
    | GiveRecognition
    | WithdrawRecognition
)
