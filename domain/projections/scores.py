"""The counted components of a score: per member, the distinct counterparts and the events.

Each event that counts is kept as evidence (member, component, counterpart, position),
so an answer can list the events behind every point. A component's value is the number
of distinct counterparts (`contacts` count the evidence per counterpart, `totals` count
the contacts). A withdrawn recognition or a retracted reply takes its evidence back; a
merge moves the duplicate's evidence, on either side, onto its survivor (what meets
itself is dropped). A reply counts for the author of the contribution it answers, so the
fold keeps who wrote each contribution (`authors`) when a formula counts answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

import msgspec

from domain import events as e
from domain.projections import Aliases, Entry, utc_day

VERSION = 3
"""Of the fold and its tables (2: replies counted and authors kept; the graph job's ranked
leaderboards; 3: its leaderboards for every past end day, `_past`); a formula's version is
the score's, not this."""

EvidenceKey = tuple[UUID, str, int, UUID]
"""member, component, position, counterpart"""
ContactKey = tuple[UUID, str, UUID]
"""member, component, counterpart"""
TotalKey = tuple[UUID, str]
"""member, component"""
Touch = tuple[str, UUID, UUID, UUID]
"""component, member, counterpart, the id the event gave the thing (recognition_id, …)"""
ANSWERS = "answers_drawn"


class Evidence(msgspec.Struct, gc=False):
    member_id: UUID
    component: str
    counterpart_id: UUID
    position: int
    ref_id: UUID
    event_id: UUID | None
    day: date

    @property
    def key(self) -> EvidenceKey:
        return (self.member_id, self.component, self.position, self.counterpart_id)


@dataclass
class State:
    """The rows a batch touches; the fold changes them in place and notes what to write."""

    components: tuple[str, ...]
    evidence: dict[EvidenceKey, Evidence] = field(default_factory=dict)
    contacts: dict[ContactKey, int] = field(default_factory=dict)
    totals: dict[TotalKey, int] = field(default_factory=dict)
    aliases: Aliases = field(default_factory=Aliases)
    added: set[EvidenceKey] = field(default_factory=set)
    dropped: set[EvidenceKey] = field(default_factory=set)
    changed_contacts: set[ContactKey] = field(default_factory=set)
    changed_totals: set[TotalKey] = field(default_factory=set)
    by_ref: dict[UUID, set[EvidenceKey]] = field(default_factory=dict)
    """The evidence of the recognitions this batch withdraws, found at once."""
    by_member: dict[UUID, set[EvidenceKey]] = field(default_factory=dict)
    """The evidence naming, on either side, a member this batch merges: what moves."""
    authors: dict[UUID, UUID] = field(default_factory=dict)
    """Who wrote the contributions this batch replies to (and those it records)."""
    new_authors: dict[UUID, UUID] = field(default_factory=dict)
    """Contributions this batch records: their authors, to keep."""


def touches(event: e.Event, authors: dict[UUID, UUID]) -> list[Touch]:
    """Every (component, member, counterpart) an event counts, before any filtering."""
    match event:
        case e.ContributionRecorded(contribution_id=ref, member_id=member, reply_to=answered) if (
            answered is not None and answered in authors
        ):
            return [(ANSWERS, authors[answered], member, ref)]
        case e.IntroductionMade(
            introducer_id=introducer, introduced_ids=introduced, introduction_id=ref
        ):
            return [("reach", introducer, m, ref) for m in dict.fromkeys(introduced)]
        case e.MentionRecorded(member_id=member, mentioned_id=mentioned, mention_id=ref):
            return [("reach", member, mentioned, ref), ("sought_out", mentioned, member, ref)]
        case e.RecognitionGiven(from_id=giver, to_id=receiver, recognition_id=ref):
            return [
                ("reach", giver, receiver, ref),
                ("recognitions_given", giver, receiver, ref),
                ("sought_out", receiver, giver, ref),
            ]
    return []


def withdrawn(entries: Iterable[Entry]) -> set[UUID]:
    """The recognitions the batch withdraws and the replies it retracts: their evidence
    must be loaded."""
    refs: set[UUID] = set()
    for entry in entries:
        match entry.event:
            case (
                e.RecognitionWithdrawn(recognition_id=ref)
                | e.ContributionRetracted(contribution_id=ref)
            ):
                refs.add(ref)
    return refs


def authors_needed(state: State, entries: Iterable[Entry]) -> set[UUID]:
    """The contributions the batch replies to that it does not record itself: whose
    authors must be loaded (none when no formula here counts answers)."""
    if ANSWERS not in state.components:
        return set()
    recorded: set[UUID] = set()
    needed: set[UUID] = set()
    for entry in entries:
        if isinstance(entry.event, e.ContributionRecorded):
            if entry.event.reply_to is not None and entry.event.reply_to not in recorded:
                needed.add(entry.event.reply_to)
            recorded.add(entry.event.contribution_id)
    return needed


def _note_author(state: State, event: e.Event) -> None:
    if ANSWERS in state.components and isinstance(event, e.ContributionRecorded):
        state.authors[event.contribution_id] = event.member_id
        state.new_authors[event.contribution_id] = event.member_id


def rows_needed(state: State, entries: Iterable[Entry]) -> tuple[set[ContactKey], set[UUID]]:
    """The contacts the batch adds to (as keyed when met), and every member a merge moves."""
    aliases = state.aliases.copy()
    authors = dict(state.authors)
    keys: set[ContactKey] = set()
    members: set[UUID] = set()
    for entry in entries:
        if isinstance(entry.event, e.MembersMerged):
            members.update(aliases.merge(entry.event) or ())
            continue
        if isinstance(entry.event, e.ContributionRecorded):
            authors[entry.event.contribution_id] = entry.event.member_id
        for component, member, counterpart, _ in touches(entry.event, authors):
            if component in state.components:
                keys.add((aliases.resolve(member), component, aliases.resolve(counterpart)))
    return keys, members


def fold(state: State, entries: Iterable[Entry]) -> State:
    entries = list(entries)
    _watch(state, entries)
    for entry in entries:
        match entry.event:
            case e.MembersMerged() as merged:
                if moved := state.aliases.merge(merged):
                    _move(state, *moved)
            case (
                e.RecognitionWithdrawn(recognition_id=ref)
                | e.ContributionRetracted(contribution_id=ref)
            ):
                for key in list(state.by_ref.get(ref, ())):
                    _drop(state, key)
            case event:
                _note_author(state, event)
                for component, member, counterpart, ref in touches(event, state.authors):
                    if component in state.components:
                        _add(
                            state,
                            Evidence(
                                member_id=state.aliases.resolve(member),
                                component=component,
                                counterpart_id=state.aliases.resolve(counterpart),
                                position=entry.position,
                                ref_id=ref,
                                event_id=entry.event_id,
                                day=utc_day(entry.occurred_at),
                            ),
                        )
    return state


def _index(state: State, evidence: Evidence) -> None:
    """Only what a withdrawal or a merge of this batch will look for: most evidence is
    never looked up again, and indexing it all costs more than the rest of the fold."""
    key = evidence.key
    if evidence.ref_id in state.by_ref:
        state.by_ref[evidence.ref_id].add(key)
    for member in (evidence.member_id, evidence.counterpart_id):
        if member in state.by_member:
            state.by_member[member].add(key)


def _watch(state: State, entries: list[Entry]) -> None:
    state.by_ref = {ref: set() for ref in withdrawn(entries)}
    aliases = state.aliases.copy()
    merges = (x.event for x in entries if isinstance(x.event, e.MembersMerged))
    state.by_member = {m: set() for merged in merges for m in aliases.merge(merged) or ()}
    if state.by_ref or state.by_member:
        for evidence in state.evidence.values():
            _index(state, evidence)


def _add(state: State, evidence: Evidence) -> None:
    if evidence.member_id == evidence.counterpart_id:
        return  # one member after a merge: nobody was reached
    key = evidence.key
    if key in state.evidence:
        return
    state.evidence[key] = evidence
    _index(state, evidence)
    state.added.add(key)
    state.dropped.discard(key)
    _count(state, (evidence.member_id, evidence.component, evidence.counterpart_id), +1)


def _drop(state: State, key: EvidenceKey) -> None:
    evidence = state.evidence.pop(key)
    if evidence.ref_id in state.by_ref:
        state.by_ref[evidence.ref_id].discard(key)
    for member in (evidence.member_id, evidence.counterpart_id):
        if member in state.by_member:
            state.by_member[member].discard(key)
    state.added.discard(key)
    state.dropped.add(key)
    _count(state, (evidence.member_id, evidence.component, evidence.counterpart_id), -1)


def _count(state: State, contact: ContactKey, change: int) -> None:
    before = state.contacts.get(contact, 0)
    after = before + change
    if after:
        state.contacts[contact] = after
    else:
        state.contacts.pop(contact, None)
    state.changed_contacts.add(contact)
    if (before == 0) != (after == 0):
        total = (contact[0], contact[1])
        value = state.totals.get(total, 0) + (1 if after else -1)
        if value:
            state.totals[total] = value
        else:
            state.totals.pop(total, None)
        state.changed_totals.add(total)


def _move(state: State, duplicate: UUID, survivor: UUID) -> None:
    """The duplicate's evidence, as member or counterpart, becomes the survivor's."""
    for key in list(state.by_member.get(duplicate, ())):
        evidence = state.evidence[key]
        _drop(state, key)
        _add(
            state,
            msgspec.structs.replace(
                evidence,
                member_id=survivor if evidence.member_id == duplicate else evidence.member_id,
                counterpart_id=(
                    survivor if evidence.counterpart_id == duplicate else evidence.counterpart_id
                ),
            ),
        )
