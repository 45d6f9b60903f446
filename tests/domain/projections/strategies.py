"""Hypothesis strategies for ledgers the rules would have accepted, in ledger order.

Members register (first, and more join later); then contributions, retractions,
introductions, mentions, recognitions, withdrawals, merges, forgets and profile
changes, each only when the rules allow it (existing and active members, nobody
recognising themselves, at least two introduced, nothing retracted or withdrawn twice).
Moments are drawn out of order over a few days, so days collide and the latest moment
is rarely the latest position.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import strategies as st

from domain import events as e
from domain.projections import Entry
from tests.domain.projections.timeline import START

Draw = st.DrawFn


class World:
    """What the rules know so far: who is active, what can still be taken back."""

    def __init__(self, members: list[uuid.UUID]) -> None:
        self.active = list(members)
        self.merged_into: dict[uuid.UUID, uuid.UUID] = {}
        self.forgotten: set[uuid.UUID] = set()
        self.contributions: dict[uuid.UUID, uuid.UUID] = {}
        self.recognitions: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}
        self.handles: dict[uuid.UUID, list[str]] = {m: [] for m in members}
        self.next_handle = 0
        self.next_id = 0

    def new_id(self) -> uuid.UUID:
        """Ids of contributions and the like: unique, and the same on every replay."""
        self.next_id += 1
        return uuid.UUID(int=self.next_id)

    def may_take_back(self, member_id: uuid.UUID) -> bool:
        while True:
            if member_id in self.forgotten:
                return False
            if member_id not in self.merged_into:
                return True
            member_id = self.merged_into[member_id]

    def new_handle(self, member_id: uuid.UUID) -> str:
        self.next_handle += 1
        handle = f"github:member-{self.next_handle}"
        self.handles[member_id].append(handle)
        return handle


def _pick(draw: Draw, items: list[uuid.UUID]) -> uuid.UUID:
    return draw(st.sampled_from(sorted(items)))


def _two(draw: Draw, world: World) -> tuple[uuid.UUID, uuid.UUID] | None:
    if len(world.active) < 2:
        return None
    first = _pick(draw, world.active)
    return first, _pick(draw, [m for m in world.active if m != first])


def _register(draw: Draw, world: World) -> e.Event | None:
    member_id = draw(st.uuids())
    if member_id in world.handles:
        return None
    world.active.append(member_id)
    world.handles[member_id] = []
    return e.MemberRegistered(
        member_id=member_id, display_name="newcomer", handles=(world.new_handle(member_id),)
    )


def _contribute(draw: Draw, world: World) -> e.Event | None:
    if not world.active:
        return None
    cid, member_id = world.new_id(), _pick(draw, world.active)
    # Some answer a contribution still standing (anyone's, their own included).
    standing = sorted(world.contributions)
    reply_to = _pick(draw, standing) if standing and draw(st.booleans()) else None
    world.contributions[cid] = member_id
    kind = draw(st.sampled_from(["chat_answer", "recap", "article"]))
    space = draw(st.sampled_from(["kaizenblog", "forum"]))
    return e.ContributionRecorded(
        contribution_id=cid, member_id=member_id, kind=kind, space=space, reply_to=reply_to
    )


def _retract(draw: Draw, world: World) -> e.Event | None:
    open_ = [c for c, m in world.contributions.items() if world.may_take_back(m)]
    if not open_:
        return None
    cid = _pick(draw, open_)
    return e.ContributionRetracted(contribution_id=cid, member_id=world.contributions.pop(cid))


def _introduce(draw: Draw, world: World) -> e.Event | None:
    if len(world.active) < 3:
        return None
    introducer = _pick(draw, world.active)
    others = sorted(m for m in world.active if m != introducer)
    introduced = draw(st.lists(st.sampled_from(others), min_size=2, max_size=4, unique=True))
    return e.IntroductionMade(
        introduction_id=world.new_id(), introducer_id=introducer, introduced_ids=tuple(introduced)
    )


def _mention(draw: Draw, world: World) -> e.Event | None:
    if not (pair := _two(draw, world)):
        return None
    return e.MentionRecorded(mention_id=world.new_id(), member_id=pair[0], mentioned_id=pair[1])


def _recognise(draw: Draw, world: World) -> e.Event | None:
    if not (pair := _two(draw, world)):
        return None
    rid = world.new_id()
    world.recognitions[rid] = pair
    return e.RecognitionGiven(recognition_id=rid, from_id=pair[0], to_id=pair[1], kind="kudos")


def _withdraw(draw: Draw, world: World) -> e.Event | None:
    open_ = [
        r
        for r, (a, b) in world.recognitions.items()
        if world.may_take_back(a) and world.may_take_back(b)
    ]
    if not open_:
        return None
    rid = _pick(draw, open_)
    giver, receiver = world.recognitions.pop(rid)
    return e.RecognitionWithdrawn(recognition_id=rid, from_id=giver, to_id=receiver)


def _merge(draw: Draw, world: World) -> e.Event | None:
    if not (pair := _two(draw, world)):
        return None
    duplicate, survivor = pair
    world.active.remove(duplicate)
    world.merged_into[duplicate] = survivor
    world.handles[survivor] += world.handles.pop(duplicate)
    return e.MembersMerged(survivor_id=survivor, duplicate_id=duplicate)


def _forget(draw: Draw, world: World) -> e.Event | None:
    if not world.active:
        return None
    member_id = _pick(draw, world.active)
    world.active.remove(member_id)
    world.forgotten.add(member_id)
    return e.MemberForgotten(member_id=member_id)


def _update(draw: Draw, world: World) -> e.Event | None:
    if not world.active:
        return None
    text = st.none() | st.text("abc ", max_size=5)
    return e.MemberProfileUpdated(
        member_id=_pick(draw, world.active),
        display_name=draw(text),
        bio=draw(text),
        links=draw(st.none() | st.tuples(st.just("https://example.org"))),
    )


def _link(draw: Draw, world: World) -> e.Event | None:
    if not world.active:
        return None
    member_id = _pick(draw, world.active)
    return e.HandleLinked(member_id=member_id, handle=world.new_handle(member_id))


def _unlink(draw: Draw, world: World) -> e.Event | None:
    holders = [m for m in world.active if world.handles.get(m)]
    if not holders:
        return None
    member_id = _pick(draw, holders)
    handle = draw(st.sampled_from(world.handles[member_id]))
    world.handles[member_id].remove(handle)
    return e.HandleUnlinked(member_id=member_id, handle=handle)


ACTIONS = {
    "register": (_register, 2),
    "contribute": (_contribute, 6),
    "retract": (_retract, 2),
    "introduce": (_introduce, 2),
    "mention": (_mention, 2),
    "recognise": (_recognise, 3),
    "withdraw": (_withdraw, 2),
    "merge": (_merge, 3),
    "forget": (_forget, 2),
    "update": (_update, 1),
    "link": (_link, 1),
    "unlink": (_unlink, 1),
}
_WEIGHTED = [name for name, (_, weight) in ACTIONS.items() for _ in range(weight)]


@st.composite
def valid_ledgers(draw: Draw, max_members: int = 8, max_steps: int = 50) -> list[Entry]:
    members = draw(st.lists(st.uuids(), min_size=2, max_size=max_members, unique=True))
    world = World(members)
    events: list[e.Event] = [
        e.MemberRegistered(member_id=m, display_name=f"member {i}", handles=(world.new_handle(m),))
        for i, m in enumerate(members)
    ]
    for _ in range(draw(st.integers(0, max_steps))):
        make, _weight = ACTIONS[draw(st.sampled_from(_WEIGHTED))]
        if (event := make(draw, world)) is not None:
            events.append(event)
    hours = draw(st.lists(st.integers(0, 96), min_size=len(events), max_size=len(events)))
    return [
        Entry(position=i, occurred_at=START + timedelta(hours=h), event=event)
        for i, (h, event) in enumerate(zip(hours, events, strict=True), start=1)
    ]
