"""Introductions that took: each pair an introduction made, and the first time the two met.

An introduction by X of A, B, C makes the pairs (A, B), (A, C), (B, C). The fold keeps,
per pair, the first direct interaction of the two at or after the introduction's moment
and later in the ledger (its *evidence*): a mention, a recognition, a reply to the
other's contribution, or one introducing the other to someone else. Whether that came
within the window (docs/introductions.md) is decided when read, against `as_of`
(`status`), so the window can change without a rebuild and the answer is the same for
the same `as_of`.

Evidence stays once found: a retracted contribution or a withdrawn recognition still
proves the two were in touch. "First" is by moment, then position, so a later entry
with an earlier moment replaces it. Members are keyed as they resolve through merges;
a merge moves the duplicate's rows onto the survivor (keeping the earlier evidence
where two rows meet) and drops a pair whose two sides became one member.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations
from typing import Literal
from uuid import UUID

import msgspec

from domain import events as e
from domain.projections import Aliases, Entry, as_utc

NAME = "introductions"
VERSION = 1

DEFAULT_WINDOW = timedelta(days=30)

Status = Literal["took", "pending", "lapsed"]
EvidenceKind = Literal["mention", "recognition", "reply", "introduction"]
Role = Literal["introducer", "introduced"]

PairKey = tuple[UUID, UUID, UUID]
"""introduction, member_a, member_b (member_a < member_b)"""
RoleKey = tuple[UUID, str, int]
"""member, role, the introduction's position"""
Contact = tuple[UUID, UUID, EvidenceKind, UUID]
"""two members (as the event names them), how they met, the id of what met them"""


class Introduction(msgspec.Struct, gc=False):
    """One introduction, its members as they resolve now."""

    introduction_id: UUID
    position: int
    introducer_id: UUID
    introduced_ids: list[UUID]
    introduced_at: datetime
    event_id: UUID | None = None


class Pair(msgspec.Struct, gc=False):
    """Two members one introduction named, and their first interaction after it (or None)."""

    introduction_id: UUID
    member_a: UUID
    member_b: UUID
    introducer_id: UUID
    position: int
    introduced_at: datetime
    evidence_kind: str | None = None
    evidence_id: UUID | None = None
    evidence_event_id: UUID | None = None
    evidence_position: int | None = None
    evidence_at: datetime | None = None

    @property
    def key(self) -> PairKey:
        return (self.introduction_id, self.member_a, self.member_b)


def status(
    introduced_at: datetime, evidence_at: datetime | None, as_of: datetime, window: timedelta
) -> Status:
    """The one rule (queries/introductions.py says it again in SQL): took if they met within
    the window and by `as_of`; lapsed once the window closed before `as_of`; else pending."""
    deadline = introduced_at + window
    if evidence_at is not None and evidence_at <= min(deadline, as_of):
        return "took"
    return "lapsed" if as_of > deadline else "pending"


def introduction_status(
    introduced_at: datetime, evidence: Iterable[datetime | None], as_of: datetime, window: timedelta
) -> Status:
    """An introduction took when one of its pairs took: its pairs share a moment, so its
    status is its earliest evidence's."""
    return status(introduced_at, min(filter(None, evidence), default=None), as_of, window)


@dataclass
class State:
    """The rows a batch touches; the fold changes them in place and notes what to write."""

    introductions: dict[UUID, Introduction] = field(default_factory=dict)
    pairs: dict[PairKey, Pair] = field(default_factory=dict)
    roles: dict[RoleKey, UUID] = field(default_factory=dict)
    authors: dict[UUID, UUID] = field(default_factory=dict)
    """contribution -> its author as recorded (resolved when used)"""
    aliases: Aliases = field(default_factory=Aliases)
    changed_introductions: set[UUID] = field(default_factory=set)
    changed_pairs: set[PairKey] = field(default_factory=set)
    removed_pairs: set[PairKey] = field(default_factory=set)
    changed_roles: set[RoleKey] = field(default_factory=set)
    removed_roles: set[RoleKey] = field(default_factory=set)
    new_authors: set[UUID] = field(default_factory=set)
    _by_members: dict[tuple[UUID, UUID], set[PairKey]] | None = None

    def pairs_of(self, a: UUID, b: UUID) -> set[PairKey]:
        if self._by_members is None:
            self._by_members = defaultdict(set)
            for key in self.pairs:
                self._by_members[key[1], key[2]].add(key)
        return self._by_members[a, b]

    def put_pair(self, pair: Pair) -> None:
        self.pairs[pair.key] = pair
        self.pairs_of(pair.member_a, pair.member_b).add(pair.key)
        self.changed_pairs.add(pair.key)
        self.removed_pairs.discard(pair.key)

    def drop_pair(self, key: PairKey) -> None:
        self.pairs.pop(key, None)
        self.pairs_of(key[1], key[2]).discard(key)
        self.changed_pairs.discard(key)
        self.removed_pairs.add(key)

    def put_role(self, key: RoleKey, introduction_id: UUID) -> None:
        self.roles[key] = introduction_id
        self.changed_roles.add(key)
        self.removed_roles.discard(key)

    def drop_role(self, key: RoleKey) -> None:
        self.roles.pop(key, None)
        self.changed_roles.discard(key)
        self.removed_roles.add(key)


def contacts_of(event: e.Event, authors: dict[UUID, UUID]) -> list[Contact]:
    """The direct interactions an event records, with `authors` to know whom a reply answers."""
    match event:
        case e.MentionRecorded(mention_id=mid, member_id=member_id, mentioned_id=mentioned):
            return [(member_id, mentioned, "mention", mid)]
        case e.RecognitionGiven(recognition_id=rid, from_id=giver, to_id=receiver):
            return [(giver, receiver, "recognition", rid)]
        case e.ContributionRecorded(contribution_id=cid, member_id=member_id, reply_to=to):
            if to is not None and (author := authors.get(to)) is not None:
                return [(member_id, author, "reply", cid)]
        case e.IntroductionMade(introduction_id=iid, introducer_id=introducer, introduced_ids=ids):
            return [(introducer, m, "introduction", iid) for m in dict.fromkeys(ids)]
    return []


def authors_needed(entries: Iterable[Entry]) -> set[UUID]:
    """The contributions a batch replies to and does not itself record."""
    recorded, wanted = set(), set()
    for entry in entries:
        if isinstance(entry.event, e.ContributionRecorded):
            recorded.add(entry.event.contribution_id)
            if entry.event.reply_to is not None:
                wanted.add(entry.event.reply_to)
    return wanted - recorded


def rows_needed(state: State, entries: Iterable[Entry]) -> tuple[set[tuple[UUID, UUID]], set[UUID]]:
    """What the fold will read: pairs by their two members, and every row of the members
    a merge moves (their roles, those introductions, and all of those introductions' pairs).

    `state.authors` must already hold the authors of `authors_needed`.
    """
    aliases, authors = state.aliases.copy(), dict(state.authors)
    keys: set[tuple[UUID, UUID]] = set()
    members: set[UUID] = set()
    for entry in entries:
        event = entry.event
        if isinstance(event, e.MembersMerged):
            members.update(aliases.merge(event) or ())
            continue
        if isinstance(event, e.ContributionRecorded):
            authors[event.contribution_id] = event.member_id
        for a, b, _, _ in contacts_of(event, authors):
            if ordered := _ordered(aliases, a, b):
                keys.add(ordered)
    return keys, members


def fold(state: State, entries: Iterable[Entry]) -> State:
    for entry in entries:
        event = entry.event
        match event:
            case e.MembersMerged():
                if moved := state.aliases.merge(event):
                    _move(state, *moved)
                continue
            case e.ContributionRecorded(contribution_id=cid, member_id=member_id):
                state.authors[cid] = member_id
                state.new_authors.add(cid)
        at = as_utc(entry.occurred_at)
        for a, b, kind, evidence_id in contacts_of(event, state.authors):
            if ordered := _ordered(state.aliases, a, b):
                _met(state, ordered, kind, evidence_id, entry, at)
        if isinstance(event, e.IntroductionMade):
            _introduce(state, event, entry, at)
    return state


def _ordered(aliases: Aliases, a: UUID, b: UUID) -> tuple[UUID, UUID] | None:
    """The two members as keyed now; None when they are one (a merge)."""
    a, b = aliases.resolve(a), aliases.resolve(b)
    return None if a == b else (a, b) if a < b else (b, a)


def _met(
    state: State,
    members: tuple[UUID, UUID],
    kind: EvidenceKind,
    evidence_id: UUID,
    entry: Entry,
    at: datetime,
) -> None:
    for key in state.pairs_of(*members):
        pair = state.pairs[key]
        if at >= pair.introduced_at and (pair.evidence_at is None or at < pair.evidence_at):
            pair.evidence_kind, pair.evidence_id = kind, evidence_id
            pair.evidence_event_id = entry.event_id
            pair.evidence_position, pair.evidence_at = entry.position, at
            state.put_pair(pair)


def _introduce(state: State, event: e.IntroductionMade, entry: Entry, at: datetime) -> None:
    introducer = state.aliases.resolve(event.introducer_id)
    introduced = list(dict.fromkeys(state.aliases.resolve(m) for m in event.introduced_ids))
    iid = event.introduction_id
    position = entry.position
    state.introductions[iid] = Introduction(
        iid, position, introducer, introduced, at, event_id=entry.event_id
    )
    state.changed_introductions.add(iid)
    state.put_role((introducer, "introducer", position), iid)
    for member in introduced:
        state.put_role((member, "introduced", position), iid)
    for a, b in combinations(sorted(m for m in introduced if m != introducer), 2):
        state.put_pair(Pair(iid, a, b, introducer, position, at))


def _move(state: State, duplicate: UUID, survivor: UUID) -> None:
    """The duplicate's rows become the survivor's; where two meet, one stays."""
    for role in [role for role in state.roles if role[0] == duplicate]:
        iid = state.roles[role]
        state.drop_role(role)
        state.put_role((survivor, role[1], role[2]), iid)
        found = state.introductions.get(iid)
        if found is not None:
            if found.introducer_id == duplicate:
                found.introducer_id = survivor
            ids = [survivor if m == duplicate else m for m in found.introduced_ids]
            found.introduced_ids = list(dict.fromkeys(ids))
            state.changed_introductions.add(iid)
    for key, pair in list(state.pairs.items()):
        if state.pairs.get(key) is not pair:
            continue  # replaced by a pair moved onto its key above
        if pair.introducer_id == duplicate:
            pair.introducer_id = survivor
            state.put_pair(pair)
        if duplicate not in (pair.member_a, pair.member_b):
            continue
        state.drop_pair(key)
        other = pair.member_b if pair.member_a == duplicate else pair.member_a
        if other == survivor:
            continue
        pair.member_a, pair.member_b = (survivor, other) if survivor < other else (other, survivor)
        into = state.pairs.get(pair.key)
        if into is None or _earlier(pair, into):
            state.put_pair(pair)


def _earlier(pair: Pair, than: Pair) -> bool:
    """Whether `pair`'s evidence comes first (any evidence before none)."""
    if pair.evidence_at is None or pair.evidence_position is None:
        return False
    if than.evidence_at is None or than.evidence_position is None:
        return True
    return (pair.evidence_at, pair.evidence_position) < (than.evidence_at, than.evidence_position)
