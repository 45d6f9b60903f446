"""A realistic, rule-abiding ledger of any size, generated deterministically from a seed.

Registrations first, then a mix of contributions (some retracted), mentions,
recognitions (some withdrawn) and introductions among the members, dated over a year.
Appended straight through the store in batches: fast enough for a million events.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import msgspec

from domain import events as e
from domain.codec import encode_payload
from domain.events import stream_of, tags_of, type_name
from services.store.ledger import Ledger
from services.store.records import NewEvent

KINDS = ("chat_answer", "article", "recap", "mentoring", "answer", "review", "commit")
SPACES = ("kaizenblog", "forum", "community-ledger", "meetup", "newsletter")
START = datetime(2025, 1, 1, tzinfo=UTC)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def synthetic_events(count: int, members: int = 20_000, seed: int = 7) -> Iterator[NewEvent]:
    """`count` events: `members` registrations (or fewer, if count is small), then the mix."""
    rng = random.Random(seed)
    members = min(members, max(2, count // 5))
    ids = [_uuid(rng) for _ in range(members)]
    contributions: list[tuple[uuid.UUID, uuid.UUID]] = []
    recognitions: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = []
    retracted: set[uuid.UUID] = set()
    withdrawn: set[uuid.UUID] = set()
    produced = 0
    for index, member_id in enumerate(ids):
        when = START + timedelta(minutes=index)
        yield _new(
            rng,
            e.MemberRegistered(
                member_id=member_id,
                display_name=f"Member {index}",
                handles=(f"github:member-{index}",),
            ),
            when,
        )
        produced += 1
        if produced >= count:
            return
    while produced < count:
        when = START + timedelta(seconds=rng.randrange(365 * 24 * 3600))
        roll = rng.random()
        actor, other = rng.sample(ids, 2)
        event: e.Event
        if roll < 0.55 or not contributions:
            cid = _uuid(rng)
            contributions.append((cid, actor))
            event = e.ContributionRecorded(
                contribution_id=cid,
                member_id=actor,
                kind=rng.choice(KINDS),
                space=rng.choice(SPACES),
                title="a contribution",
            )
        elif roll < 0.58:
            cid, owner = rng.choice(contributions)
            if cid in retracted:
                continue
            retracted.add(cid)
            event = e.ContributionRetracted(contribution_id=cid, member_id=owner, reason="dup")
        elif roll < 0.75:
            cid, owner = rng.choice(contributions)
            if owner == other:
                continue
            event = e.MentionRecorded(
                mention_id=_uuid(rng), member_id=owner, mentioned_id=other, contribution_id=cid
            )
        elif roll < 0.9:
            rid = _uuid(rng)
            recognitions.append((rid, actor, other))
            event = e.RecognitionGiven(
                recognition_id=rid, from_id=actor, to_id=other, kind=rng.choice(e.RECOGNITION_KINDS)
            )
        elif roll < 0.92:
            if not recognitions:
                continue
            rid, giver, receiver = rng.choice(recognitions)
            if rid in withdrawn:
                continue
            withdrawn.add(rid)
            event = e.RecognitionWithdrawn(recognition_id=rid, from_id=giver, to_id=receiver)
        else:
            introduced = tuple(m for m in rng.sample(ids, 3) if m != actor)[:2]
            if len(introduced) < 2:
                continue
            event = e.IntroductionMade(
                introduction_id=_uuid(rng),
                introducer_id=actor,
                introduced_ids=introduced,
                space=rng.choice(SPACES),
            )
        yield _new(rng, event, when)
        produced += 1


def _new(rng: random.Random, event: e.Event, occurred_at: datetime) -> NewEvent:
    return NewEvent(
        event_id=_uuid(rng),
        type=type_name(event),
        data=msgspec.Raw(encode_payload(event)),
        stream=stream_of(event),
        tags=tags_of(event),
        occurred_at=occurred_at,
    )


async def fill(
    ledger: Ledger, count: int, members: int = 20_000, seed: int = 7, batch: int = 5_000
) -> int:
    """Append `count` synthetic events; answer the head position."""
    pending: list[NewEvent] = []
    for event in synthetic_events(count, members, seed):
        pending.append(event)
        if len(pending) == batch:
            await ledger.append(pending)
            pending = []
    if pending:
        await ledger.append(pending)
    return await ledger.head()
