"""Community health: any batch split equals one batch, and both equal what the definitions say.

The store here keeps the applier's tables as dicts and loads exactly what the fold asks
for, as the applier does. Two oracles read the final ledger with no incremental step at
all: one builds the same tables from each member's days, the other counts the published
definitions (docs/metrics.md) straight from the events, per period.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import events as e
from domain.projections import Aliases, Entry, utc_day
from domain.projections import community_health as h
from tests.domain.projections.strategies import valid_ledgers
from tests.domain.projections.timeline import (
    ANA,
    CY,
    DEE,
    START,
    contributed,
    ledger,
    merged,
    registered,
    retracted,
)


class Store:
    """The applier's tables, as dicts."""

    def __init__(self) -> None:
        self.rows: dict[h.RowKey, list[int]] = {}
        self.firsts: dict[h.MemberKey, list[Any]] = {}
        self.spells: dict[h.MemberKey, dict[Any, Any]] = {}
        self.totals: Counter[tuple[Any, ...]] = Counter()
        self.histogram: Counter[h.HistogramKey] = Counter()
        self.refs: dict[UUID, h.Ref] = {}
        self.aliases: dict[UUID, UUID] = {}

    def days_of(self, wanted: Any) -> list[tuple[h.RowKey, list[int]]]:
        return [(k, list(v)) for k, v in self.rows.items() if k[2] == "day" and wanted(k)]

    def apply(self, batch: list[Entry]) -> None:
        state = h.State()
        state.refs = {r: copy.copy(self.refs[r]) for r in h.refs_needed(batch) if r in self.refs}
        state.aliases = Aliases(self.aliases)
        away = h.merged_away(state.aliases, batch)
        for (member_id, space, _, day), counts in self.days_of(lambda k: k[0] in away):
            state.stored_days.setdefault(member_id, {}).setdefault(space, {})[day] = counts
        h.fold(state, batch)
        stored = []
        for key, (contributions, actions) in h.row_changes(state).items():
            row = self.rows.setdefault(key, [0, 0])
            row[0] += contributions
            row[1] += actions
            stored.append((key, row[0], row[1]))
        for key in h.settle_rows(state, stored):
            del self.rows[key]
        emptied = h.needs_days(state)
        days: dict[h.MemberKey, dict[Any, tuple[int, int]]] = {}
        for (member_id, space, _, day), (c, a) in self.days_of(lambda k: k[:2] in emptied):
            days.setdefault((member_id, space), {})[day] = (c, a)
        firsts = {k: (v[0], v[1]) for k, v in self.firsts.items() if k in state.changed}
        spells = {k: dict(v) for k, v in self.spells.items() if k in state.changed}
        settled = h.settle_members(state, firsts, spells, days)
        for key in settled.members_gone:
            del self.firsts[key]
        for key, first_contribution, first_action in settled.members:
            self.firsts[key] = [first_contribution, first_action]
        for key, first in settled.spells_gone:
            del self.spells[key][first]
        for key, first, last in settled.spells:
            self.spells.setdefault(key, {})[first] = last
        self.spells = {k: v for k, v in self.spells.items() if v}
        for total_key, changes in state.totals.items():
            for name, change in zip(h.TOTALS, changes, strict=True):
                self.totals[(*total_key, name)] += change
        self.histogram.update(state.histogram)
        self.histogram = Counter({k: v for k, v in self.histogram.items() if v})
        self.totals = Counter({k: v for k, v in self.totals.items() if v})
        for ref_id in state.changed_refs:
            self.refs[ref_id] = copy.copy(state.refs[ref_id])
        self.aliases.update(state.aliases.added)

    def tables(self) -> tuple[Any, ...]:
        return (self.rows, self.firsts, self.spells, self.totals, self.histogram)


Actions = list[tuple[UUID, str, date, int]]
"""Every action still standing: (member as merged at the end, space, day, which total)."""


def standing(entries: list[Entry]) -> Actions:
    """The actions the ledger holds in the end: none retracted or withdrawn, merges applied."""
    aliases = Aliases()
    for entry in entries:
        if isinstance(entry.event, e.MembersMerged):
            aliases.merge(entry.event)
    taken_back = {
        getattr(x.event, "contribution_id", None) or getattr(x.event, "recognition_id", None)
        for x in entries
        if isinstance(x.event, e.ContributionRetracted | e.RecognitionWithdrawn)
    }
    found = []
    for entry in entries:
        event = entry.event
        if (actor := h.actor_of(event)) is None:
            continue
        if isinstance(event, e.ContributionRecorded) and event.contribution_id in taken_back:
            continue
        if isinstance(event, e.RecognitionGiven) and event.recognition_id in taken_back:
            continue
        found.append((aliases.resolve(actor[0]), event.space, utc_day(entry.occurred_at), actor[1]))  # type: ignore[attr-defined]
    return found


def from_scratch(entries: list[Entry]) -> tuple[Any, ...]:
    """The tables, built from each member's days in the final ledger."""
    days: dict[h.MemberKey, dict[Any, list[int]]] = {}
    totals: Counter[tuple[Any, ...]] = Counter()
    for member_id, space, day, index in standing(entries):
        for key in h.spaces_of(space):
            counts = days.setdefault((member_id, key), {}).setdefault(day, [0, 0])
            counts[0] += index == 0
            counts[1] += 1
            for period in h.PERIODS:
                totals[(period, key, h.period_start(period, day), h.TOTALS[index])] += 1
    rows: dict[h.RowKey, list[int]] = {}
    firsts, spells = {}, {}
    histogram: Counter[h.HistogramKey] = Counter()
    for (member_id, space), by_day in days.items():
        for day, (c, a) in by_day.items():
            for period in h.PERIODS:
                row = rows.setdefault(
                    (member_id, space, period, h.period_start(period, day)), [0, 0]
                )
                row[0] += c
                row[1] += a
        (first_contribution, first_action), member_spells = h.derive(by_day)
        firsts[(member_id, space)] = [first_contribution, first_action]
        for period in h.PERIODS:
            totals[(period, space, h.period_start(period, first_action), "new_members")] += 1
            if first_contribution is not None:
                start = h.period_start(period, first_contribution)
                totals[(period, space, start, "new_contributors")] += 1
        if member_spells:
            spells[(member_id, space)] = member_spells
        for first, last in member_spells.items():
            for period in h.COHORT_PERIODS:
                totals[(period, space, h.period_start(period, first), "spell_starts")] += 1
                totals[(period, space, h.period_start(period, first), "recent_change")] += 1
                ended = h.period_start(period, last + timedelta(days=h.INACTIVITY_DAYS))
                totals[(period, space, ended, "recent_change")] -= 1
    for (_, space, period, start), (c, _) in rows.items():
        totals[(period, space, start, "active_members")] += 1
        if c and period != "day":
            histogram[(period, space, start, c)] += 1
    totals = Counter({k: v for k, v in totals.items() if v})
    return rows, firsts, spells, totals, histogram


@st.composite
def spread_ledgers(draw: st.DrawFn) -> tuple[list[Entry], list[int]]:
    """Valid ledgers dated over 400 days, so that gaps longer than 90 days happen, and a split."""
    entries = draw(valid_ledgers(max_members=5, max_steps=40))
    days = draw(st.lists(st.integers(0, 400), min_size=len(entries), max_size=len(entries)))
    spread = [
        Entry(position=x.position, occurred_at=START + timedelta(days=d), event=x.event)
        for x, d in zip(entries, days, strict=True)
    ]
    sizes = draw(st.lists(st.integers(1, 6), min_size=len(entries), max_size=len(entries)))
    return spread, sizes


def in_batches(entries: list[Entry], sizes: list[int]) -> Store:
    store, at = Store(), 0
    for size in sizes:
        if batch := entries[at : at + size]:
            store.apply(batch)
        at += size
    return store


@settings(max_examples=300, deadline=None)
@given(case=spread_ledgers())
def test_any_batch_split_equals_one_batch_and_a_derivation_from_scratch(
    case: tuple[list[Entry], list[int]],
) -> None:
    entries, sizes = case
    whole = in_batches(entries, [len(entries)]).tables()
    split = in_batches(entries, sizes).tables()

    assert split == whole
    assert whole == from_scratch(entries)


def by_definition(entries: list[Entry]) -> dict[tuple[str, str, date], dict[str, Any]]:
    """Each week's and month's numbers counted as docs/metrics.md words them, from the events."""
    actions = standing(entries)
    found: dict[tuple[str, str, date], dict[str, Any]] = {}
    if not actions:
        return found
    spaces = {key for _, space, _, _ in actions for key in h.spaces_of(space)}
    last_day = max(day for _, _, day, _ in actions) + timedelta(days=2 * h.INACTIVITY_DAYS)
    for space in spaces:
        mine = [(m, day, index) for m, s, day, index in actions if space in h.spaces_of(s)]
        contributed: dict[UUID, list[date]] = {}
        for member_id, day, index in mine:
            if index == 0:
                contributed.setdefault(member_id, []).append(day)
        first_action: dict[UUID, date] = {}
        for member_id, day, _ in mine:
            first_action[member_id] = min(day, first_action.get(member_id, day))
        for period in h.COHORT_PERIODS:
            start = h.period_start(period, min(day for _, day, _ in mine))
            while start <= last_day:
                end = h.next_period(period, start)
                inside = [(m, day, i) for m, day, i in mine if start <= day < end]
                made = Counter(m for m, _, i in inside if i == 0)
                found[(period, space, start)] = {
                    "contributions": sum(made.values()),
                    "active_members": len({m for m, _, _ in inside}),
                    "new_members": sum(start <= d < end for d in first_action.values()),
                    "new_contributors": sum(start <= min(d) < end for d in contributed.values()),
                    "returning": sum(
                        any(
                            start <= d < end and (d - max(p for p in days if p < d)).days > 90
                            for d in days
                            if any(p < d for p in days)
                        )
                        for days in contributed.values()
                    ),
                    "inactive": sum(
                        min(days) < end
                        and not any(
                            end - timedelta(days=h.INACTIVITY_DAYS) <= d < end for d in days
                        )
                        for days in contributed.values()
                    ),
                    "histogram": Counter(made.values()),
                }
                start = end
    return found


def as_read(store: Store, keys: list[tuple[str, str, date]]) -> dict[tuple[str, str, date], Any]:
    """The same numbers as the queries read them from the stored totals and histogram."""
    read = {}
    for period, space, start in keys:
        total = {name: store.totals[(period, space, start, name)] for name in h.TOTALS}
        earlier = [
            (name, count)
            for (p, s, at, name), count in store.totals.items()
            if (p, s) == (period, space) and at <= start
        ]
        known = sum(c for name, c in earlier if name == "new_contributors")
        recent = sum(c for name, c in earlier if name == "recent_change")
        read[(period, space, start)] = {
            "contributions": total["contributions"],
            "active_members": total["active_members"],
            "new_members": total["new_members"],
            "new_contributors": total["new_contributors"],
            "returning": total["spell_starts"] - total["new_contributors"],
            "inactive": known - recent,
            "histogram": Counter(
                {
                    count: members
                    for (p, s, at, count), members in store.histogram.items()
                    if (p, s, at) == (period, space, start)
                }
            ),
        }
    return read


@settings(max_examples=150, deadline=None)
@given(case=spread_ledgers())
def test_what_the_batches_add_up_to_is_what_the_definitions_count(
    case: tuple[list[Entry], list[int]],
) -> None:
    entries, sizes = case
    store = in_batches(entries, sizes)

    expected = by_definition(entries)

    assert as_read(store, list(expected)) == expected


def on(day: str, event: e.Event) -> tuple[Any, e.Event]:
    return (datetime.fromisoformat(f"{day}T12:00:00+00:00"), event)


def monthly(store: Store, name: str, space: str = h.ALL_SPACES) -> dict[str, int]:
    """A total by month, as the stored changes add up."""
    return {
        key[2].isoformat(): count
        for key, count in sorted(store.totals.items())
        if key[0] == "month" and key[1] == space and key[3] == name
    }


def test_given_a_return_after_a_long_gap_then_a_spell_ends_and_another_starts() -> None:
    # Given Ana contributes on Jan 10 and Feb 5, and again on Jun 2 (117 days later).
    given = ledger(
        registered(ANA),
        on("2025-01-10", contributed(ANA)),
        on("2025-02-05", contributed(ANA)),
        on("2025-06-02", contributed(ANA)),
    )
    # When the fold has seen it, one event at a time.
    store = in_batches(given, [1] * len(given))
    # Then two spells: Jan 10 to Feb 5, and Jun 2; she starts (new) in January, returns
    # in June, and counts as recently active from January to the month holding May 6
    # (Feb 5 + 90 days), when she turns inactive until June.
    assert store.spells[(ANA, h.ALL_SPACES)] == {
        date(2025, 1, 10): date(2025, 2, 5),
        date(2025, 6, 2): date(2025, 6, 2),
    }
    assert monthly(store, "new_contributors") == {"2025-01-01": 1}
    assert monthly(store, "spell_starts") == {"2025-01-01": 1, "2025-06-01": 1}
    assert monthly(store, "recent_change") == {
        "2025-01-01": 1,
        "2025-05-01": -1,
        "2025-06-01": 1,
        "2025-08-01": -1,
    }


def test_given_a_merge_then_the_survivor_starts_with_the_duplicates_first_day() -> None:
    # Given Dee contributes in January and Cy in March.
    dee_first = contributed(DEE)
    given = ledger(
        registered(CY),
        registered(DEE),
        on("2025-01-05", dee_first),
        on("2025-03-10", contributed(CY)),
    )
    # When Dee is merged into Cy, then Dee's contribution retracted, in later batches.
    store = in_batches(given, [len(given)])
    store.apply(ledger(merged(DEE, into=CY))[-1:])
    merged_store = copy.deepcopy(store)
    store.apply([Entry(position=99, occurred_at=START, event=retracted(dee_first))])
    # Then after the merge Cy is one member, new in January, active in January and March;
    # after the retraction, new in March.
    assert monthly(merged_store, "new_contributors") == {"2025-01-01": 1}
    assert monthly(merged_store, "active_members") == {"2025-01-01": 1, "2025-03-01": 1}
    assert (DEE, h.ALL_SPACES) not in merged_store.firsts
    assert monthly(store, "new_contributors") == {"2025-03-01": 1}
    assert monthly(store, "active_members") == {"2025-03-01": 1}
    assert store.firsts[(CY, h.ALL_SPACES)] == [date(2025, 3, 10), date(2025, 3, 10)]
