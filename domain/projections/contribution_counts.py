"""Contribution counts by member, kind, space and UTC day; the API sums them by week or month.

The fold turns a batch into additive changes (deltas) plus, in order, the merges it
met: deltas commute, so the applier writes them in one statement, and moves a merged
member's rows after the deltas that came before the merge.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from domain import events as e
from domain.projections import Entry, survivor

NAME = "contribution_counts"
VERSION = 1

Key = tuple[UUID, str, str, date]
"""member, kind, space, day"""


@dataclass
class ContributionRef:
    contribution_id: UUID
    member_id: UUID
    kind: str
    space: str
    day: date
    retracted: bool = False


@dataclass
class Changes:
    """What a batch does to the tables: `steps` alternate delta groups and merges, in order."""

    contributions: dict[UUID, ContributionRef] = field(default_factory=dict)
    aliases: dict[UUID, UUID] = field(default_factory=dict)
    dirty_contributions: set[UUID] = field(default_factory=set)
    new_aliases: dict[UUID, UUID] = field(default_factory=dict)
    steps: list[dict[Key, int] | tuple[UUID, UUID]] = field(default_factory=list)

    def delta(self, key: Key, change: int) -> None:
        if not self.steps or not isinstance(self.steps[-1], dict):
            self.steps.append(defaultdict(int))
        step = self.steps[-1]
        assert isinstance(step, dict)
        step[key] += change


def contribution_ids_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {
        entry.event.contribution_id
        for entry in entries
        if isinstance(entry.event, e.ContributionRetracted)
    }


def member_ids_needed(entries: Iterable[Entry]) -> set[UUID]:
    return {m for entry in entries for m in e.member_ids_of(entry.event)}


def fold(changes: Changes, entries: Iterable[Entry]) -> Changes:
    for entry in entries:
        event = entry.event
        match event:
            case e.ContributionRecorded(
                contribution_id=cid, member_id=member_id, kind=kind, space=space
            ):
                ref = ContributionRef(
                    contribution_id=cid,
                    member_id=member_id,
                    kind=kind,
                    space=space,
                    day=entry.occurred_at.date(),
                )
                changes.contributions[cid] = ref
                changes.dirty_contributions.add(cid)
                changes.delta(_key(changes, ref), +1)
            case e.ContributionRetracted(contribution_id=cid):
                found = changes.contributions.get(cid)
                if found is None or found.retracted:
                    continue
                found.retracted = True
                changes.dirty_contributions.add(cid)
                changes.delta(_key(changes, found), -1)
            case e.MembersMerged(survivor_id=survivor_id, duplicate_id=duplicate_id):
                target = survivor(changes.aliases, survivor_id)
                changes.aliases[duplicate_id] = changes.new_aliases[duplicate_id] = target
                changes.steps.append((duplicate_id, target))
    return changes


def _key(changes: Changes, ref: ContributionRef) -> Key:
    return (survivor(changes.aliases, ref.member_id), ref.kind, ref.space, ref.day)
