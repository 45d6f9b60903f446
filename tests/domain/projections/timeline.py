"""Ledger entries for fold tests: events in order, one hour apart unless a moment is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from domain import events as e
from domain.ids import new_id
from domain.projections import Entry

START = datetime(2025, 3, 1, 9, tzinfo=UTC)

ANA, BO, CY, DEE = sorted(new_id() for _ in range(4))
"""Sorted, so that pairs of them read (member_a, member_b) in argument order."""


def ledger(*items: e.Event | tuple[datetime, e.Event]) -> list[Entry]:
    entries = []
    for position, item in enumerate(items, start=1):
        at, event = item if isinstance(item, tuple) else (START + timedelta(hours=position), item)
        entries.append(Entry(position=position, occurred_at=at, event=event))
    return entries


def registered(member_id: UUID, *handles: str, name: str = "") -> e.MemberRegistered:
    return e.MemberRegistered(member_id=member_id, display_name=name or "someone", handles=handles)


def contributed(
    member_id: UUID, kind: str = "chat_answer", space: str = "kaizenblog", cid: UUID | None = None
) -> e.ContributionRecorded:
    return e.ContributionRecorded(
        contribution_id=cid or new_id(), member_id=member_id, kind=kind, space=space
    )


def retracted(recorded: e.ContributionRecorded) -> e.ContributionRetracted:
    return e.ContributionRetracted(
        contribution_id=recorded.contribution_id, member_id=recorded.member_id
    )


def introduced(introducer: UUID, *members: UUID) -> e.IntroductionMade:
    return e.IntroductionMade(
        introduction_id=new_id(), introducer_id=introducer, introduced_ids=members
    )


def mentioned(member_id: UUID, other: UUID) -> e.MentionRecorded:
    return e.MentionRecorded(mention_id=new_id(), member_id=member_id, mentioned_id=other)


def recognised(giver: UUID, receiver: UUID) -> e.RecognitionGiven:
    return e.RecognitionGiven(recognition_id=new_id(), from_id=giver, to_id=receiver, kind="kudos")


def withdrawn(given: e.RecognitionGiven) -> e.RecognitionWithdrawn:
    return e.RecognitionWithdrawn(
        recognition_id=given.recognition_id, from_id=given.from_id, to_id=given.to_id
    )


def merged(duplicate: UUID, into: UUID) -> e.MembersMerged:
    return e.MembersMerged(survivor_id=into, duplicate_id=duplicate)


def forgotten(member_id: UUID) -> e.MemberForgotten:
    return e.MemberForgotten(member_id=member_id)
