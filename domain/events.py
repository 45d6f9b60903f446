"""The event catalogue (v1): what the ledger can record, as one tagged union.

Tags are explicit strings so that renaming a class never orphans stored rows.
Evolution is additive: new fields get defaults; anything else bumps
`SCHEMA_VERSION` on the class and adds an upcaster in `domain.upcasters`.
Envelope facts (position, stream, tags, occurred_at) live in the store, not here.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

import msgspec

from domain.handles import normalize_handle
from domain.streams import (
    contribution_stream,
    contribution_tag,
    handle_tag,
    introduction_stream,
    member_stream,
    member_tag,
    mention_stream,
    recognition_stream,
    space_tag,
)


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Something that happened in the community; never changed once recorded."""

    SCHEMA_VERSION: ClassVar[int] = 1


class MemberRegistered(Event, frozen=True, tag="MemberRegistered"):
    member_id: UUID
    display_name: str
    handles: tuple[str, ...] = ()
    joined_at: datetime | None = None


class MemberProfileUpdated(Event, frozen=True, tag="MemberProfileUpdated"):
    """Only the fields given (not None) change."""

    member_id: UUID
    display_name: str | None = None
    bio: str | None = None
    links: tuple[str, ...] | None = None


class HandleLinked(Event, frozen=True, tag="HandleLinked"):
    member_id: UUID
    handle: str


class HandleUnlinked(Event, frozen=True, tag="HandleUnlinked"):
    member_id: UUID
    handle: str


class MembersMerged(Event, frozen=True, tag="MembersMerged"):
    """`duplicate_id`'s history now counts for `survivor_id`."""

    survivor_id: UUID
    duplicate_id: UUID


class MemberForgotten(Event, frozen=True, tag="MemberForgotten"):
    member_id: UUID
    reason: str = ""


class ContributionRecorded(Event, frozen=True, tag="ContributionRecorded"):
    contribution_id: UUID
    member_id: UUID
    kind: str
    space: str
    title: str = ""
    body: str = ""
    url: str = ""
    attributes: dict[str, str] = {}
    reply_to: UUID | None = None


class ContributionRetracted(Event, frozen=True, tag="ContributionRetracted"):
    contribution_id: UUID
    member_id: UUID
    reason: str = ""


class IntroductionMade(Event, frozen=True, tag="IntroductionMade"):
    introduction_id: UUID
    introducer_id: UUID
    introduced_ids: tuple[UUID, ...]
    note: str = ""
    space: str = ""


class MentionRecorded(Event, frozen=True, tag="MentionRecorded"):
    mention_id: UUID
    member_id: UUID
    mentioned_id: UUID
    contribution_id: UUID | None = None
    space: str = ""


class RecognitionGiven(Event, frozen=True, tag="RecognitionGiven"):
    recognition_id: UUID
    from_id: UUID
    to_id: UUID
    kind: str
    reason: str = ""
    contribution_id: UUID | None = None
    space: str = ""


class RecognitionWithdrawn(Event, frozen=True, tag="RecognitionWithdrawn"):
    recognition_id: UUID
    from_id: UUID
    to_id: UUID
    reason: str = ""


AnyEvent = (
    MemberRegistered
    | MemberProfileUpdated
    | HandleLinked
    | HandleUnlinked
    | MembersMerged
    | MemberForgotten
    | ContributionRecorded
    | ContributionRetracted
    | IntroductionMade
    | MentionRecorded
    | RecognitionGiven
    | RecognitionWithdrawn
)

EVENT_TYPES: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in AnyEvent.__args__}

RECOGNITION_KINDS = ("kudos", "thanks", "highlight", "award")

CONTRIBUTION_KINDS = (
    "chat_answer",
    "chat_question",
    "chat_hosting",
    "article",
    "blog_post",
    "recap",
    "talk",
    "mentoring",
    "event_hosting",
    "answer",
    "commit",
    "co_authored_commit",
    "review",
    "test",
    "ack",
)
"""A starter vocabulary, not a closed list: any lowercase slug is a valid kind."""


def type_name(event: Event) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]


def member_ids_of(event: Event) -> tuple[UUID, ...]:
    """Every member an event names, in a stable order, without repeats."""
    match event:
        case MembersMerged(survivor_id=survivor, duplicate_id=duplicate):
            ids: tuple[UUID, ...] = (survivor, duplicate)
        case IntroductionMade(introducer_id=introducer, introduced_ids=introduced):
            ids = (introducer, *introduced)
        case MentionRecorded(member_id=member, mentioned_id=mentioned):
            ids = (member, mentioned)
        case (
            RecognitionGiven(from_id=giver, to_id=receiver)
            | RecognitionWithdrawn(from_id=giver, to_id=receiver)
        ):
            ids = (giver, receiver)
        case _:
            ids = (event.member_id,)  # type: ignore[attr-defined]
    return tuple(dict.fromkeys(ids))


def stream_of(event: Event) -> str:
    """The consistency boundary an event is versioned in."""
    match event:
        case ContributionRecorded(contribution_id=cid) | ContributionRetracted(contribution_id=cid):
            return contribution_stream(cid)
        case IntroductionMade(introduction_id=iid):
            return introduction_stream(iid)
        case MentionRecorded(mention_id=mid):
            return mention_stream(mid)
        case RecognitionGiven(recognition_id=rid) | RecognitionWithdrawn(recognition_id=rid):
            return recognition_stream(rid)
        case MembersMerged(duplicate_id=duplicate):
            return member_stream(duplicate)
        case _:
            return member_stream(event.member_id)  # type: ignore[attr-defined]


def tags_of(event: Event) -> tuple[str, ...]:
    """The ledger tags that make an event findable: members, contribution, space, handles.

    Handle tags use the normalised key, so `twitter:@CASUDI` and `x:casudi` find one history.
    """
    tags = [member_tag(member_id) for member_id in member_ids_of(event)]
    match event:
        case ContributionRecorded(contribution_id=cid, space=space):
            tags += [contribution_tag(cid), space_tag(space)]
        case ContributionRetracted(contribution_id=cid):
            tags.append(contribution_tag(cid))
        case MentionRecorded(contribution_id=cid) | RecognitionGiven(contribution_id=cid) if cid:
            tags.append(contribution_tag(cid))
        case MemberRegistered(handles=handles):
            tags += [handle_tag(normalize_handle(handle)) for handle in handles]
        case HandleLinked(handle=handle) | HandleUnlinked(handle=handle):
            tags.append(handle_tag(normalize_handle(handle)))
    space = getattr(event, "space", "")
    if space and space_tag(space) not in tags:
        tags.append(space_tag(space))
    return tuple(tags)
