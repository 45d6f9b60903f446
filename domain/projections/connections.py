"""Connections: undirected member pairs, with a count and a last time per relation.

Relations: `introduced_together` (two members one introduction named), `introduced`
(the introducer with each member introduced), `mentioned`, `recognised` (withdrawals
take one back). Like contribution counts, the fold emits commuting deltas and merges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from uuid import UUID

from domain import events as e
from domain.projections import Entry, survivor

NAME = "connections"
VERSION = 1

RELATIONS = ("introduced_together", "introduced", "mentioned", "recognised")
Pair = tuple[UUID, UUID]


@dataclass
class PairDelta:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RELATIONS, 0))
    last_at: dict[str, datetime | None] = field(default_factory=lambda: dict.fromkeys(RELATIONS))


@dataclass
class Changes:
    aliases: dict[UUID, UUID] = field(default_factory=dict)
    new_aliases: dict[UUID, UUID] = field(default_factory=dict)
    steps: list[dict[Pair, PairDelta] | tuple[UUID, UUID]] = field(default_factory=list)

    def delta(self, a: UUID, b: UUID, relation: str, change: int, at: datetime) -> None:
        a, b = survivor(self.aliases, a), survivor(self.aliases, b)
        if a == b:
            return
        if not self.steps or not isinstance(self.steps[-1], dict):
            self.steps.append({})
        step = self.steps[-1]
        assert isinstance(step, dict)
        pair = step.setdefault((min(a, b), max(a, b)), PairDelta())
        pair.counts[relation] += change
        if change > 0 and (pair.last_at[relation] is None or at > pair.last_at[relation]):  # type: ignore[operator]
            pair.last_at[relation] = at


def member_ids_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {m for entry in entries for m in e.member_ids_of(entry.event)}


def fold(changes: Changes, entries: Iterable[Entry]) -> Changes:
    for entry in entries:
        at = entry.occurred_at
        match entry.event:
            case e.IntroductionMade(introducer_id=introducer, introduced_ids=introduced):
                for a, b in combinations(dict.fromkeys(introduced), 2):
                    changes.delta(a, b, "introduced_together", 1, at)
                for member_id in introduced:
                    changes.delta(introducer, member_id, "introduced", 1, at)
            case e.MentionRecorded(member_id=member_id, mentioned_id=mentioned):
                changes.delta(member_id, mentioned, "mentioned", 1, at)
            case e.RecognitionGiven(from_id=giver, to_id=receiver):
                changes.delta(giver, receiver, "recognised", 1, at)
            case e.RecognitionWithdrawn(from_id=giver, to_id=receiver):
                changes.delta(giver, receiver, "recognised", -1, at)
            case e.MembersMerged(survivor_id=survivor_id, duplicate_id=duplicate_id):
                target = survivor(changes.aliases, survivor_id)
                changes.aliases[duplicate_id] = changes.new_aliases[duplicate_id] = target
                changes.steps.append((duplicate_id, target))
    return changes
