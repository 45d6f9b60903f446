"""Community health per day, week and month: activity series and CHAOSS contributor cohorts.

What each number means is published in docs/metrics.md. The read model keeps, per member
and space (and per member over all spaces, space `*`), one row per period they acted in
([contributions, actions]), their first contribution and first action, and their
*spells*: runs of contributions with no gap longer than INACTIVITY_DAYS. Per period and
space it keeps totals, and how many members made exactly k contributions (the histogram
the onion, occasional contributors and the absence factor are read from).

A batch is settled in three steps, so that each stored row is written once per batch
and nothing is read back before it is needed:
1. `fold` sums the batch into changes per member, space and day (a retraction or a
   withdrawal is a -1 there, a merge moves the duplicate's days to the survivor), and
   counts events per space and day; `row_changes` rolls the days up to weeks and months.
2. The applier adds those changes to the stored rows and hands back each row's new
   counts; `settle_rows` compares them with the old ones (new minus change) to count
   members who became (in)active, move the histogram, and find the members whose set of
   contributing or acting days grew or shrank.
3. For those members `settle_members` moves firsts and spells: from the stored ones when
   days were only added, or derived again from the member's day rows in that space when
   a day was emptied. Totals are kept as changes, so a batch never reads them back.
Retracted contributions and withdrawn recognitions do not count, as in
contribution_counts; an erased member's numbers stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
DayKey = tuple[UUID, str, date]
"""member, space, day"""
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


@dataclass
class DaysChanged:
    """How a member's set of days in one space changed in this batch."""

    contributed: list[date] = field(default_factory=list)
    """Days that now hold a contribution and held none."""
    acted: list[date] = field(default_factory=list)
    """Days that now hold an action and held none."""
    emptied: bool = False
    """A day lost its last contribution or action: firsts and spells are derived again."""


@dataclass
class Settled:
    """What a member's firsts and spells became: rows to write and rows to delete."""

    members: list[tuple[MemberKey, date | None, date]] = field(default_factory=list)
    members_gone: list[MemberKey] = field(default_factory=list)
    spells: list[tuple[MemberKey, date, date]] = field(default_factory=list)
    spells_gone: list[tuple[MemberKey, date]] = field(default_factory=list)


@dataclass
class State:
    """One batch: its changes, then the totals and histogram they move."""

    aliases: Aliases = field(default_factory=Aliases)
    refs: dict[UUID, Ref] = field(default_factory=dict)
    stored_days: dict[UUID, dict[str, dict[date, list[int]]]] = field(default_factory=dict)
    """The stored day rows of members this batch merges away (see `merged_away`)."""
    days: dict[DayKey, list[int]] = field(default_factory=dict)
    """Changes to [contributions, actions] of a member's day in a space."""
    counts: dict[tuple[str, date], list[int]] = field(default_factory=dict)
    """Changes to the events counted per space and day (the first four TOTALS)."""
    rows: dict[RowKey, list[int]] = field(default_factory=dict)
    """Changes to [contributions, actions] of every period row (`row_changes`)."""
    totals: dict[TotalKey, list[int]] = field(default_factory=dict)
    """Changes to the totals (added to the stored ones)."""
    histogram: dict[HistogramKey, int] = field(default_factory=dict)
    """Changes to the number of members with k contributions in a period."""
    changed: dict[MemberKey, DaysChanged] = field(default_factory=dict)
    changed_refs: set[UUID] = field(default_factory=set)

    def total(self, period: str, space: str, day: date, index: int, change: int) -> None:
        key = (period, space, period_start(period, day))
        if (found := self.totals.get(key)) is None:
            found = self.totals[key] = [0] * len(TOTALS)
        found[index] += change


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


def merged_away(aliases: Aliases, entries: Iterable[Entry]) -> set[UUID]:
    """The members this batch merges into others: their stored day rows are moved."""
    aliases, found = aliases.copy(), set()
    for entry in entries:
        if isinstance(entry.event, e.MembersMerged) and (moved := aliases.merge(entry.event)):
            found.add(moved[0])
    return found


def fold(state: State, entries: Iterable[Entry]) -> State:
    """Sum the batch into `days` and `counts`; `stored_days` holds `merged_away`'s rows."""
    days, counts, resolve = state.days, state.counts, state.aliases.resolve
    for entry in entries:
        event = entry.event
        if (actor := actor_of(event)) is not None:
            member_id, index = resolve(actor[0]), actor[1]
            day = utc_day(entry.occurred_at)
            if isinstance(event, e.ContributionRecorded | e.RecognitionGiven):
                state.refs[_ref_id(event)] = _ref(event, day)
                state.changed_refs.add(_ref_id(event))
            for space in spaces_of(event.space):  # type: ignore[attr-defined]
                if (count := counts.get((space, day))) is None:
                    count = counts[(space, day)] = [0, 0, 0, 0]
                count[index] += 1
                if (row := days.get((member_id, space, day))) is None:
                    row = days[(member_id, space, day)] = [0, 0]
                row[0] += index == 0
                row[1] += 1
        elif isinstance(event, e.ContributionRetracted | e.RecognitionWithdrawn):
            found = state.refs.get(_ref_id(event))
            if found is None or found.taken_back:
                continue
            found.taken_back = True
            state.changed_refs.add(found.ref_id)
            member_id = resolve(found.member_id)
            for space in spaces_of(found.space):
                count = counts.setdefault((space, found.day), [0, 0, 0, 0])
                count[0 if found.contribution else 3] -= 1
                row = days.setdefault((member_id, space, found.day), [0, 0])
                row[0] -= found.contribution
                row[1] -= 1
        elif isinstance(event, e.MembersMerged) and (moved := state.aliases.merge(event)):
            _move(state, *moved)
    return state


def _move(state: State, duplicate: UUID, survivor: UUID) -> None:
    """The duplicate's days, stored and changed in this batch, become the survivor's."""
    held: dict[tuple[str, date], list[int]] = {}
    for space, stored in state.stored_days.pop(duplicate, {}).items():
        for day, counts in stored.items():
            held[(space, day)] = list(counts)
    for (member_id, space, day), change in state.days.items():
        if member_id == duplicate:
            counts = held.setdefault((space, day), [0, 0])
            counts[0] += change[0]
            counts[1] += change[1]
    for (space, day), (contributions, actions) in held.items():
        for member_id, sign in ((duplicate, -1), (survivor, +1)):
            row = state.days.setdefault((member_id, space, day), [0, 0])
            row[0] += sign * contributions
            row[1] += sign * actions


def row_changes(state: State) -> dict[RowKey, list[int]]:
    """Roll the days' changes up to weeks and months, and count the events per period."""
    rows = state.rows
    for (member_id, space, day), (contributions, actions) in state.days.items():
        if not (contributions or actions):
            continue
        for period in PERIODS:
            key = (member_id, space, period, period_start(period, day))
            if (row := rows.get(key)) is None:
                rows[key] = [contributions, actions]
            else:
                row[0] += contributions
                row[1] += actions
    for (space, day), count in state.counts.items():
        for period in PERIODS:
            for index, change in enumerate(count):
                if change:
                    state.total(period, space, day, index, change)
    for key in [key for key, (c, a) in rows.items() if not (c or a)]:
        del rows[key]
    return rows


def settle_rows(state: State, stored: Iterable[tuple[RowKey, int, int]]) -> list[RowKey]:
    """Given each changed row's new [contributions, actions], count what moved; answer the
    rows left with no action (to delete)."""
    gone = []
    # Summed by row first (a row's period start is its total's key): this runs per row.
    active: dict[TotalKey, int] = {}
    histogram: dict[HistogramKey, int] = {}
    changes, changed = state.rows, state.changed
    for key, contributions, actions in stored:
        member_id, space, period, start = key
        change = changes[key]
        was_contributions, was_actions = contributions - change[0], actions - change[1]
        if (actions > 0) != (was_actions > 0):
            total_key = (period, space, start)
            active[total_key] = active.get(total_key, 0) + (1 if actions else -1)
            if not actions:
                gone.append(key)
        if period != "day":
            if contributions != was_contributions:
                if was_contributions:
                    count_key = (period, space, start, was_contributions)
                    histogram[count_key] = histogram.get(count_key, 0) - 1
                if contributions:
                    count_key = (period, space, start, contributions)
                    histogram[count_key] = histogram.get(count_key, 0) + 1
            continue
        now_contributed, now_acted = contributions > 0, actions > 0
        if now_contributed == (was_contributions > 0) and now_acted == (was_actions > 0):
            continue
        if (days := changed.get((member_id, space))) is None:
            days = changed[(member_id, space)] = DaysChanged()
        if now_contributed and not was_contributions:
            days.contributed.append(start)
        if now_acted and not was_actions:
            days.acted.append(start)
        if (was_contributions and not now_contributed) or (was_actions and not now_acted):
            days.emptied = True
    for (period, space, start), moved in active.items():
        if moved:
            state.total(period, space, start, _ACTIVE, moved)
    for count_key, moved in histogram.items():
        state.histogram[count_key] = state.histogram.get(count_key, 0) + moved
    return gone


def needs_days(state: State) -> set[MemberKey]:
    """Members (in a space) whose day rows `settle_members` derives firsts and spells from."""
    return {key for key, changed in state.changed.items() if changed.emptied}


def settle_members(
    state: State,
    firsts: Mapping[MemberKey, tuple[date | None, date | None]],
    spells: Mapping[MemberKey, Mapping[date, date]],
    days: Mapping[MemberKey, Mapping[date, tuple[int, int]]],
) -> Settled:
    """Move the firsts and spells of the members in `state.changed`, from their stored ones
    (`firsts`, `spells`) or, for those in `needs_days`, from their day rows (`days`)."""
    settled = Settled()
    # Changes to totals by day first: a spell that grows takes back and gives the same
    # start, and only what is left is spread over the periods.
    marks: dict[tuple[str, date, int], int] = {}
    spell_marks: dict[tuple[str, date, int], int] = {}
    for key, changed in state.changed.items():
        space = key[1]
        was_firsts = firsts.get(key, (None, None))
        was_spells = spells.get(key, {})
        if changed.emptied:
            now_firsts, now_spells = derive(days.get(key, {}))
        else:
            now_firsts = (
                min(
                    (d for d in (was_firsts[0], *changed.contributed) if d is not None),
                    default=None,
                ),
                min((d for d in (was_firsts[1], *changed.acted) if d is not None), default=None),
            )
            now_spells = dict(was_spells)
            for day in changed.contributed:
                _add_spell_day(now_spells, day)
        for was, now, counted in (
            (was_firsts[1], now_firsts[1], _NEW_MEMBERS),
            (was_firsts[0], now_firsts[0], _NEW_CONTRIBUTORS),
        ):
            if was != now:
                if was is not None:
                    _mark(marks, (space, was, counted), -1)
                if now is not None:
                    _mark(marks, (space, now, counted), +1)
        if now_firsts != tuple(was_firsts):
            if now_firsts[1] is None:
                settled.members_gone.append(key)
            else:
                settled.members.append((key, now_firsts[0], now_firsts[1]))
        for first, last in was_spells.items():
            if now_spells.get(first) != last:
                _count_spell(spell_marks, space, first, last, -1)
                if first not in now_spells:
                    settled.spells_gone.append((key, first))
        for first, last in now_spells.items():
            if was_spells.get(first) != last:
                _count_spell(spell_marks, space, first, last, +1)
                settled.spells.append((key, first, last))
    for periods, marked in ((PERIODS, marks), (COHORT_PERIODS, spell_marks)):
        for (space, day, index), change in marked.items():
            if change:
                for period in periods:
                    state.total(period, space, day, index, change)
    return settled


def _mark(marks: dict[tuple[str, date, int], int], key: tuple[str, date, int], change: int) -> None:
    marks[key] = marks.get(key, 0) + change


def derive(
    days: Mapping[date, tuple[int, int] | list[int]],
) -> tuple[tuple[date | None, date | None], dict[date, date]]:
    """A member's (first contribution, first action) and spells in one space, from their days."""
    contributed = sorted(day for day, (contributions, _) in days.items() if contributions)
    acted = [day for day, (_, actions) in days.items() if actions]
    spells: dict[date, date] = {}
    first = last = None
    for day in contributed:
        if first is not None and last is not None and (day - last).days <= INACTIVITY_DAYS:
            spells[first] = last = day
        else:
            first = last = spells[day] = day
    return (contributed[0] if contributed else None, min(acted, default=None)), spells


def _add_spell_day(spells: dict[date, date], day: date) -> None:
    """A first contribution on `day`: it extends, joins or starts spells."""
    before = max((start for start in spells if start <= day), default=None)
    after = min((start for start in spells if start > day), default=None)
    if before is not None and day <= spells[before]:
        return  # inside a spell: nothing changes
    first, last = day, day
    if before is not None and (day - spells[before]).days <= INACTIVITY_DAYS:
        first = before
    if after is not None and (after - day).days <= INACTIVITY_DAYS:
        last = spells.pop(after)
    spells[first] = last


def _count_spell(
    marks: dict[tuple[str, date, int], int], space: str, first: date, last: date, sign: int
) -> None:
    _mark(marks, (space, first, _STARTS), sign)
    _mark(marks, (space, first, _RECENT), sign)
    _mark(marks, (space, last + timedelta(days=INACTIVITY_DAYS), _RECENT), -sign)


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


def _ref(event: e.ContributionRecorded | e.RecognitionGiven, day: date) -> Ref:
    if isinstance(event, e.ContributionRecorded):
        return Ref(event.contribution_id, event.member_id, event.space, day, True)
    return Ref(event.recognition_id, event.from_id, event.space, day, False)
