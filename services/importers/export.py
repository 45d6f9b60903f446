"""`export jsonl`: the whole ledger as batch items, one per event, in position order.

Every item names members and things by id and carries the event's `occurred_at`, so
`import jsonl` of the export into an empty ledger decides the same events, in the same
order, with the same data and dates (their event ids and positions are new). An erased
member's items carry only what is left (ids, kinds, spaces, dates), their registration
the name `forgotten`; the ForgetMember item after it erases them again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

import msgspec

from domain import events as e
from services import items as s
from services.store.ledger import Ledger

PAGE = 1000
FORGOTTEN_NAME = "forgotten"
"""The name an erased member's registration is exported with: theirs is gone."""
_encoder = msgspec.json.Encoder()


async def export_items(ledger: Ledger, page: int = PAGE) -> AsyncIterator[s.Request]:
    """The ledger's events as batch items, read a page at a time."""
    after = 0
    while records := await ledger.read_feed(after=after, limit=page):
        for record in records:
            event = record.decode()
            if record.erased and isinstance(event, e.MemberRegistered):
                # What is left of an erased member must still import, and be erased again
                # by the ForgetMember item that follows it.
                event = msgspec.structs.replace(event, display_name=FORGOTTEN_NAME)
            yield item_for(event, record.occurred_at.astimezone(UTC))
        after = records[-1].position


async def export_jsonl(ledger: Ledger, output: BinaryIO, page: int = PAGE) -> int:
    """Write one item per line; answers how many."""
    count = 0
    async for item in export_items(ledger, page):
        output.write(_encoder.encode(compact(item)) + b"\n")
        count += 1
    return count


def item_for(event: e.Event, at: datetime) -> s.Request:
    match event:
        case e.MemberRegistered():
            return s.RegisterMemberItem(id=event.member_id, display_name=event.display_name,
                                        handles=list(event.handles), joined_at=event.joined_at,
                                        occurred_at=at)  # fmt: skip
        case e.MemberProfileUpdated():
            return s.UpdateMemberItem(
                member=str(event.member_id), display_name=event.display_name, bio=event.bio,
                links=None if event.links is None else list(event.links), occurred_at=at,
            )  # fmt: skip
        case e.HandleLinked():
            return s.UpdateMemberItem(member=str(event.member_id), add_handles=[event.handle],
                                      occurred_at=at)  # fmt: skip
        case e.HandleUnlinked():
            return s.UpdateMemberItem(member=str(event.member_id), remove_handles=[event.handle],
                                      occurred_at=at)  # fmt: skip
        case e.MembersMerged():
            return s.MergeMembersItem(
                survivor=str(event.survivor_id), duplicate=str(event.duplicate_id), occurred_at=at
            )
        case e.MemberForgotten():
            return s.ForgetMemberItem(member=str(event.member_id), reason=event.reason,
                                      occurred_at=at)  # fmt: skip
        case e.ContributionRecorded():
            return s.RecordContributionItem(
                id=event.contribution_id, member=str(event.member_id), kind=event.kind,
                space=event.space, title=event.title, body=event.body, url=event.url,
                attributes=dict(event.attributes), reply_to=event.reply_to, occurred_at=at,
            )  # fmt: skip
        case e.ContributionRetracted():
            return s.RetractContributionItem(contribution_id=event.contribution_id,
                                             reason=event.reason, occurred_at=at)  # fmt: skip
        case e.IntroductionMade():
            return s.MakeIntroductionItem(
                id=event.introduction_id, introducer=str(event.introducer_id),
                introduced=[str(m) for m in event.introduced_ids], note=event.note,
                space=event.space, occurred_at=at,
            )  # fmt: skip
        case e.MentionRecorded():
            return s.RecordMentionItem(
                id=event.mention_id, member=str(event.member_id),
                mentioned=str(event.mentioned_id), contribution_id=event.contribution_id,
                space=event.space, occurred_at=at,
            )  # fmt: skip
        case e.RecognitionGiven():
            return s.GiveRecognitionItem(
                id=event.recognition_id, from_=str(event.from_id), to=str(event.to_id),
                kind=event.kind, reason=event.reason, contribution_id=event.contribution_id,
                space=event.space, occurred_at=at,
            )  # fmt: skip
        case e.RecognitionWithdrawn():
            return s.WithdrawRecognitionItem(recognition_id=event.recognition_id,
                                             reason=event.reason, occurred_at=at)  # fmt: skip
    raise TypeError(f"no batch item for {type(event).__name__}")


def compact(item: s.Request) -> dict[str, Any]:
    """The item as JSON-ready builtins without fields left at their defaults: shorter lines."""
    config = item.__struct_config__
    found: dict[str, Any] = {config.tag_field or "command": config.tag}
    for field in msgspec.structs.fields(item):
        value = getattr(item, field.name)
        default = field.default
        if default is msgspec.NODEFAULT and field.default_factory is not msgspec.NODEFAULT:
            default = field.default_factory()
        if value != default or default is msgspec.NODEFAULT:
            found[field.encode_name] = msgspec.to_builtins(value)
    return found
