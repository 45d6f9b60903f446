"""Connections: undirected member pairs, with a count and a last time per relation.

Relations: `introduced_together` (two members one introduction named), `introduced`
(the introducer with each member introduced), `mentioned` (either way), `recognised`
(either way; a withdrawal takes one back). A pair is keyed (member_a, member_b) with
member_a < member_b; a pair whose counts all return to zero leaves no row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from uuid import UUID

import msgspec

from domain import events as e
from domain.projections import Aliases, Entry, as_utc

NAME = "connections"
VERSION = 2

RELATIONS = ("introduced_together", "introduced", "mentioned", "recognised")

PairKey = tuple[UUID, UUID]
Link = tuple[UUID, UUID, str, int]
"""two members, a relation, +1 or -1"""


class Pair(msgspec.Struct, gc=False):
    """One row: per relation a count, and the latest moment it was counted (None at zero)."""

    member_a: UUID
    member_b: UUID
    counts: dict[str, int] = msgspec.field(default_factory=lambda: dict.fromkeys(RELATIONS, 0))
    last_at: dict[str, datetime | None] = msgspec.field(
        default_factory=lambda: dict.fromkeys(RELATIONS)
    )


@dataclass
class State:
    """The pairs a batch touches; the fold changes them in place and notes what to write."""

    pairs: dict[PairKey, Pair] = field(default_factory=dict)
    aliases: Aliases = field(default_factory=Aliases)
    changed: set[PairKey] = field(default_factory=set)
    removed: set[PairKey] = field(default_factory=set)


def links_of(event: e.Event) -> list[Link]:
    match event:
        case e.IntroductionMade(introducer_id=introducer, introduced_ids=introduced):
            distinct = list(dict.fromkeys(introduced))
            together = [(a, b, "introduced_together", 1) for a, b in combinations(distinct, 2)]
            return together + [(introducer, m, "introduced", 1) for m in distinct]
        case e.MentionRecorded(member_id=member_id, mentioned_id=mentioned):
            return [(member_id, mentioned, "mentioned", 1)]
        case e.RecognitionGiven(from_id=giver, to_id=receiver):
            return [(giver, receiver, "recognised", 1)]
        case e.RecognitionWithdrawn(from_id=giver, to_id=receiver):
            return [(giver, receiver, "recognised", -1)]
    return []


def members_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {m for entry in entries for m in e.member_ids_of(entry.event)}


def rows_needed(state: State, entries: Iterable[Entry]) -> tuple[set[PairKey], set[UUID]]:
    """The pairs the fold will read: by key, and every pair of members a merge moves."""
    aliases = state.aliases.copy()
    keys: set[PairKey] = set()
    members: set[UUID] = set()
    for entry in entries:
        if isinstance(entry.event, e.MembersMerged):
            members.update(aliases.merge(entry.event) or ())
        for a, b, _, _ in links_of(entry.event):
            if key := _key(aliases, a, b):
                keys.add(key)
    return keys, members


def fold(state: State, entries: Iterable[Entry]) -> State:
    for entry in entries:
        if isinstance(entry.event, e.MembersMerged):
            if moved := state.aliases.merge(entry.event):
                _move(state, *moved)
            continue
        for a, b, relation, change in links_of(entry.event):
            if key := _key(state.aliases, a, b):
                _link(state, key, relation, change, as_utc(entry.occurred_at))
    return state


def _key(aliases: Aliases, a: UUID, b: UUID) -> PairKey | None:
    """The pair as it is keyed now; None when both sides are one member (after a merge)."""
    a, b = aliases.resolve(a), aliases.resolve(b)
    return None if a == b else (a, b) if a < b else (b, a)


def _link(state: State, key: PairKey, relation: str, change: int, at: datetime) -> None:
    pair = state.pairs.get(key)
    if pair is None:
        if change < 0:
            return  # nothing left to take back (the pair met itself in a merge)
        pair = state.pairs[key] = Pair(*key)
    pair.counts[relation] += change
    if pair.counts[relation] == 0:
        pair.last_at[relation] = None
    elif change > 0:
        pair.last_at[relation] = _later(pair.last_at[relation], at)
    _keep_or_drop(state, key, pair)


def _keep_or_drop(state: State, key: PairKey, pair: Pair) -> None:
    if any(pair.counts.values()):
        state.pairs[key] = pair
        state.changed.add(key)
        state.removed.discard(key)
    else:
        state.pairs.pop(key, None)
        state.changed.discard(key)
        state.removed.add(key)


def _move(state: State, duplicate: UUID, survivor: UUID) -> None:
    """The duplicate's pairs become the survivor's, summed where they meet; theirs vanishes."""
    for key in [key for key in state.pairs if duplicate in key]:
        pair = state.pairs.pop(key)
        state.changed.discard(key)
        state.removed.add(key)
        other = key[1] if key[0] == duplicate else key[0]
        if other == survivor:
            continue
        new_key = (survivor, other) if survivor < other else (other, survivor)
        into = state.pairs.get(new_key) or Pair(*new_key)
        for relation in RELATIONS:
            into.counts[relation] += pair.counts[relation]
            into.last_at[relation] = _later(into.last_at[relation], pair.last_at[relation])
        _keep_or_drop(state, new_key, into)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None or a >= b else b
