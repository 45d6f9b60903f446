"""Community health per day, week and month: activity series and CHAOSS contributor cohorts.

What each number means is published in docs/metrics.md. The fold keeps, per member and
space (and per member over all spaces, space `*`), one row per period they acted in
(contributions and actions), their first contribution and first action, and their
*spells*: runs of contributions with no gap longer than INACTIVITY_DAYS. Per period and
space it keeps totals, and how many members made exactly k contributions (the histogram
the onion, occasional contributors and the absence factor are read from).

Totals are kept as changes, so a batch never reads them back. Most events only add:
the fold then changes the few rows the event's periods and spells touch. A retraction,
a withdrawal or a merge may take a member's first day or split a spell: for such a
member the batch loads all their day rows and derives everything again, before and
after, and keeps the difference. Retracted contributions and withdrawn recognitions do
not count, as in contribution_counts; an erased member's numbers stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from uuid import UUID

import msgspec

from domain import events as e
from domain.projections import Aliases, Entry, utc_day

NAME = "community_health"
VERSION = 1

INACTIVITY_DAYS = 90
"""A gap longer than this ends a spell: the member was inactive, and returns after it."""
ALL_SPACES = "*"
"""The space key of totals over every space (never a space slug)."""
PERIODS = ("day", "week", "month")
COHORT_PERIODS = ("week", "month")

TOTALS = (
    "contributions",
    "introductions",
    "mentions",
    "recognitions",
    "active_members",
    "new_members",
    "new_contributors",
    "spell_starts",
    "recent_change",
)
"""Per period: counts of events, of members, and `recent_change`, whose running sum over
the periods up to one is how many contributed in the INACTIVITY_DAYS before its end."""
_ACTIVE, _NEW_MEMBERS, _NEW_CONTRIBUTORS, _STARTS, _RECENT = range(4, 9)

MemberKey = tuple[UUID, str]
"""member, space"""
RowKey = tuple[UUID, str, str, date]
"""member, space, period, period start"""
TotalKey = tuple[str, str, date]
"""period, space, period start"""
HistogramKey = tuple[str, str, date, int]
"""period, space, period start, contributions in it"""


@cache  # pure, and called several times per event: days are few, events many
def period_start(period: str, day: date) -> date:
    """The first day of the period holding `day`: itself, its ISO week's Monday, its month's 1st."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def next_period(period: str, start: date) -> date:
    """The first day of the period after the one starting at `start`."""
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


class Ref(msgspec.Struct, gc=False):
    """Where a contribution or a recognition was counted, so that taking it back finds it."""

    ref_id: UUID
    member_id: UUID
    space: str
    day: date
    contribution: bool
    taken_back: bool = False


class Derived(msgspec.Struct, gc=False):
    """All a member's rows in one space, derived from their days (full re-derivation)."""

    rows: dict[tuple[str, date], list[int]]
    firsts: list[date | None]
    spells: dict[date, date]


@dataclass
class State:
    """The rows a batch touches; the fold changes them in place and notes what to write."""

    aliases: Aliases = field(default_factory=Aliases)
    refs: dict[UUID, Ref] = field(default_factory=dict)
    rows: dict[RowKey, list[int]] = field(default_factory=dict)
    """[contributions, actions] of a member in a space and period."""
    firsts: dict[MemberKey, list[date | None]] = field(default_factory=dict)
    """[first contribution, first action] of a member in a space."""
    spells: dict[MemberKey, dict[date, date]] = field(default_factory=dict)
    """first day -> last day of each spell of a member in a space."""
    full: set[UUID] = field(default_factory=set)
    """Members derived again whole in this batch: their days are in `days`."""
    days: dict[UUID, dict[str, dict[date, list[int]]]] = field(default_factory=dict)
    """member -> space -> day -> [contributions, actions], for members derived whole."""
    totals: dict[TotalKey, list[int]] = field(default_factory=dict)
    """Changes to the totals (added to the stored ones)."""
    histogram: dict[HistogramKey, int] = field(default_factory=dict)
    """Changes to the number of members with k contributions in a period."""
    changed_rows: set[RowKey] = field(default_factory=set)
    changed_members: set[MemberKey] = field(default_factory=set)
    old_spells: dict[MemberKey, dict[date, date]] = field(default_factory=dict)
    changed_refs: set[UUID] = field(default_factory=set)

    def total(self, period: str, space: str, day: date, index: int, change: int) -> None:
        key = (period, space, period_start(period, day))
        if (found := self.totals.get(key)) is None:
            found = self.totals[key] = [0] * len(TOTALS)
        found[index] += change

    def members_with(self, period: str, space: str, start: date, count: int, change: int) -> None:
        key = (period, space, start, count)
        self.histogram[key] = self.histogram.get(key, 0) + change


def actor_of(event: e.Event) -> tuple[UUID, int] | None:
    """Who acted, and which total the event adds to (contributions… recognitions)."""
    match event:
        case e.ContributionRecorded(member_id=member_id):
            return member_id, 0
        case e.IntroductionMade(introducer_id=member_id):
            return member_id, 1
        case e.MentionRecorded(member_id=member_id):
            return member_id, 2
        case e.RecognitionGiven(from_id=member_id):
            return member_id, 3
    return None


def spaces_of(space: str) -> tuple[str, str]:
    return (space, ALL_SPACES)


def refs_needed(entries: Iterable[Entry]) -> set[UUID]:
    found: set[UUID] = set()
    for entry in entries:
        match entry.event:
            case e.ContributionRetracted(contribution_id=ref_id):
                found.add(ref_id)
            case e.RecognitionWithdrawn(recognition_id=ref_id):
                found.add(ref_id)
    return found


def rows_needed(state: State, entries: Iterable[Entry]) -> tuple[set[RowKey], set[UUID]]:
    """The rows the fold reads by key, and the members it derives again whole (`full`)."""
    aliases, refs = state.aliases.copy(), dict(state.refs)
    acted: list[tuple[UUID, str, date]] = []
    full: set[UUID] = set()
    for entry in entries:
        event = entry.event
        if (actor := actor_of(event)) is not None:
            member_id = aliases.resolve(actor[0])
            acted.append((member_id, event.space, utc_day(entry.occurred_at)))  # type: ignore[attr-defined]
            if isinstance(event, e.ContributionRecorded | e.RecognitionGiven):
                refs[_ref_id(event)] = _ref(entry, event)
        elif isinstance(event, e.ContributionRetracted | e.RecognitionWithdrawn):
            if (ref := refs.get(_ref_id(event))) is not None:
                full.add(aliases.resolve(ref.member_id))
        elif isinstance(event, e.MembersMerged):
            full.update(aliases.merge(event) or ())
    keys = {
        (member_id, key, period, period_start(period, day))
        for member_id, space, day in acted
        if member_id not in full
        for key in spaces_of(space)
        for period in PERIODS
    }
    return keys, full


def fold(state: State, entries: Iterable[Entry]) -> State:
    """Fold the batch; `state.rows` holds the keys rows_needed named, and all rows of `full`."""
    for member_id in state.full:
        _count_days(state, member_id, -1)
    for entry in entries:
        event = entry.event
        if (actor := actor_of(event)) is not None:
            member_id, index = state.aliases.resolve(actor[0]), actor[1]
            day = utc_day(entry.occurred_at)
            if isinstance(event, e.ContributionRecorded | e.RecognitionGiven):
                state.refs[_ref_id(event)] = _ref(entry, event)
                state.changed_refs.add(_ref_id(event))
            for space in spaces_of(event.space):  # type: ignore[attr-defined]
                state.total("day", space, day, index, +1)
                state.total("week", space, day, index, +1)
                state.total("month", space, day, index, +1)
                if member_id in state.full:
                    _change_day(state, (member_id, space), day, index == 0, +1)
                else:
                    _act(state, (member_id, space), day, contribution=index == 0)
        elif isinstance(event, e.ContributionRetracted | e.RecognitionWithdrawn):
            found = state.refs.get(_ref_id(event))
            if found is None or found.taken_back:
                continue
            found.taken_back = True
            state.changed_refs.add(found.ref_id)
            member_id = state.aliases.resolve(found.member_id)
            for space in spaces_of(found.space):
                for period in PERIODS:
                    state.total(period, space, found.day, 0 if found.contribution else 3, -1)
                _change_day(state, (member_id, space), found.day, found.contribution, -1)
        elif isinstance(event, e.MembersMerged) and (moved := state.aliases.merge(event)):
            _move(state, *moved)
    for member_id in state.full:
        _count_days(state, member_id, +1)
    return state


def derive(days: dict[date, list[int]]) -> Derived:
    """A member's rows, firsts and spells in one space, from [contributions, actions] by day."""
    rows: dict[tuple[str, date], list[int]] = {}
    for day, (contributions, actions) in days.items():
        if not actions:
            continue
        for period in PERIODS:
            row = rows.setdefault((period, period_start(period, day)), [0, 0])
            row[0] += contributions
            row[1] += actions
    contributed = sorted(day for day, (contributions, _) in days.items() if contributions)
    acted = [day for day, (_, actions) in days.items() if actions]
    spells: dict[date, date] = {}
    first = last = None
    for day in contributed:
        if first is not None and last is not None and (day - last).days <= INACTIVITY_DAYS:
            spells[first] = last = day
        else:
            first = last = spells[day] = day
    firsts = [contributed[0] if contributed else None, min(acted) if acted else None]
    return Derived(rows=rows, firsts=firsts, spells=spells)


def _ref_id(event: e.Event) -> UUID:
    match event:
        case (
            e.ContributionRecorded(contribution_id=ref_id)
            | e.ContributionRetracted(contribution_id=ref_id)
        ):
            return ref_id
        case (
            e.RecognitionGiven(recognition_id=ref_id)
            | e.RecognitionWithdrawn(recognition_id=ref_id)
        ):
            return ref_id
    raise TypeError(type(event).__name__)


def _ref(entry: Entry, event: e.ContributionRecorded | e.RecognitionGiven) -> Ref:
    day = utc_day(entry.occurred_at)
    if isinstance(event, e.ContributionRecorded):
        return Ref(event.contribution_id, event.member_id, event.space, day, True)
    return Ref(event.recognition_id, event.from_id, event.space, day, False)


def _act(state: State, key: MemberKey, day: date, *, contribution: bool) -> None:
    """One more action (a contribution, or another) by a member not derived whole."""
    member_id, space = key
    new_day = False
    for period in PERIODS:
        row_key = (member_id, space, period, period_start(period, day))
        row = state.rows.get(row_key)
        if row is None:
            row = state.rows[row_key] = [0, 0]
        contributions, actions = row
        row[1] += 1
        row[0] += contribution
        state.changed_rows.add(row_key)
        if not actions:
            state.total(period, space, day, _ACTIVE, +1)
        if contribution and period == "day":
            new_day = not contributions
        if contribution and period != "day":
            if contributions:
                state.members_with(period, space, row_key[3], contributions, -1)
            state.members_with(period, space, row_key[3], contributions + 1, +1)
    firsts = state.firsts.setdefault(key, [None, None])
    for index, counted, applies in (
        (1, _NEW_MEMBERS, True),
        (0, _NEW_CONTRIBUTORS, contribution),
    ):
        first = firsts[index]
        if applies and (first is None or day < first):
            for period in PERIODS:
                if first is not None:
                    state.total(period, space, first, counted, -1)
                state.total(period, space, day, counted, +1)
            firsts[index] = day
            state.changed_members.add(key)
    if new_day:
        _add_spell_day(state, key, day)


def _add_spell_day(state: State, key: MemberKey, day: date) -> None:
    """A first contribution on `day`: it extends, joins or starts spells."""
    spells = state.spells.setdefault(key, {})
    state.old_spells.setdefault(key, dict(spells))
    before = max((start for start in spells if start <= day), default=None)
    after = min((start for start in spells if start > day), default=None)
    if before is not None and day <= spells[before]:
        return  # inside a spell: nothing changes
    joined: list[tuple[date, date]] = []
    first, last = day, day
    if before is not None and (day - spells[before]).days <= INACTIVITY_DAYS:
        joined.append((before, spells[before]))
        first = before
    if after is not None and (after - day).days <= INACTIVITY_DAYS:
        joined.append((after, spells[after]))
        last = spells[after]
    for start, end in joined:
        del spells[start]
        _count_spell(state, key[1], start, end, -1)
    spells[first] = last
    _count_spell(state, key[1], first, last, +1)
    state.changed_members.add(key)


def _count_spell(state: State, space: str, first: date, last: date, sign: int) -> None:
    covered_until = last + timedelta(days=INACTIVITY_DAYS)
    for period in COHORT_PERIODS:
        state.total(period, space, first, _STARTS, sign)
        state.total(period, space, first, _RECENT, sign)
        state.total(period, space, covered_until, _RECENT, -sign)


def _change_day(state: State, key: MemberKey, day: date, contribution: bool, change: int) -> None:
    """For a member derived whole: their day's counts change; rows follow at the end."""
    counts = state.days.setdefault(key[0], {}).setdefault(key[1], {}).setdefault(day, [0, 0])
    counts[0] += change if contribution else 0
    counts[1] += change


def _move(state: State, duplicate: UUID, survivor: UUID) -> None:
    """The duplicate's days join the survivor's (both are derived whole: see rows_needed)."""
    spaces = state.days.get(duplicate, {})
    for space, days in spaces.items():
        into = state.days.setdefault(survivor, {}).setdefault(space, {})
        for day, (contributions, actions) in days.items():
            counts = into.setdefault(day, [0, 0])
            counts[0] += contributions
            counts[1] += actions
        spaces[space] = {}


def _count_days(state: State, member_id: UUID, sign: int) -> None:
    """Count (sign +1) or uncount (-1) all a member's derived rows; +1 also writes them."""
    for space, days in state.days.get(member_id, {}).items():
        key = (member_id, space)
        derived = derive(days)
        for (period, start), (contributions, actions) in derived.rows.items():
            if actions:
                state.total(period, space, start, _ACTIVE, sign)
            if contributions and period != "day":
                state.members_with(period, space, start, contributions, sign)
        first_contribution, first_action = derived.firsts
        for period in PERIODS:
            if first_action is not None:
                state.total(period, space, first_action, _NEW_MEMBERS, sign)
            if first_contribution is not None:
                state.total(period, space, first_contribution, _NEW_CONTRIBUTORS, sign)
        for first, last in derived.spells.items():
            _count_spell(state, space, first, last, sign)
        if sign < 0:  # what is not derived again is deleted
            state.old_spells[key] = derived.spells
            for period_key in derived.rows:
                row_key = (*key, *period_key)
                state.rows[row_key] = [0, 0]
                state.changed_rows.add(row_key)
            state.changed_members.add(key)
        else:
            state.old_spells.setdefault(key, {})  # a space new to the member had none
            for period_key, row in derived.rows.items():
                row_key = (*key, *period_key)
                state.rows[row_key] = row
                state.changed_rows.add(row_key)
            state.firsts[key] = derived.firsts
            state.spells[key] = derived.spells
            state.changed_members.add(key)


def load_days(state: State, rows: Iterable[tuple[RowKey, list[int]]]) -> None:
    """Loaded rows: all go to `rows`; the day rows of members derived whole also to `days`."""
    for key, counts in rows:
        state.rows[key] = counts
        member_id, space, period, start = key
        if period == "day" and member_id in state.full:
            state.days.setdefault(member_id, {}).setdefault(space, {})[start] = list(counts)
