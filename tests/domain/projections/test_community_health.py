"""Community health: any batch split equals one batch, and both equal a derivation from scratch.

The store here keeps the applier's tables as dicts and loads exactly what the fold asks
for, as the applier does; the oracle derives every member's rows again from the final
ledger, with no incremental step at all.
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

    def apply(self, batch: list[Entry]) -> None:
        state = h.State()
        state.refs = {r: copy.copy(self.refs[r]) for r in h.refs_needed(batch) if r in self.refs}
        state.aliases = Aliases(self.aliases)
        keys, state.full = h.rows_needed(state, batch)
        h.load_days(
            state,
            [(k, list(v)) for k, v in self.rows.items() if k in keys or k[0] in state.full],
        )
        for member_key in {(k[0], k[1]) for k in keys}:
            if member_key in self.firsts:
                state.firsts[member_key] = list(self.firsts[member_key])
            if member_key in self.spells:
                state.spells[member_key] = dict(self.spells[member_key])
        h.fold(state, batch)
        for key in state.changed_rows:
            row = state.rows.get(key, [0, 0])
            if row[1]:
                self.rows[key] = list(row)
            else:
                self.rows.pop(key, None)
        for member_key in state.changed_members:
            firsts = state.firsts.get(member_key, [None, None])
            if firsts[1] is None:
                self.firsts.pop(member_key, None)
            else:
                self.firsts[member_key] = list(firsts)
        for member_key in state.old_spells:
            if spells := state.spells.get(member_key):
                self.spells[member_key] = dict(spells)
            else:
                self.spells.pop(member_key, None)
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


def from_scratch(entries: list[Entry]) -> tuple[Any, ...]:
    """Everything derived from the final ledger at once, each member as merged at the end."""
    aliases = Aliases()
    for entry in entries:
        if isinstance(entry.event, e.MembersMerged):
            aliases.merge(entry.event)
    taken_back = {
        getattr(x.event, "contribution_id", None) or getattr(x.event, "recognition_id", None)
        for x in entries
        if isinstance(x.event, e.ContributionRetracted | e.RecognitionWithdrawn)
    }
    days: dict[h.MemberKey, dict[Any, list[int]]] = {}
    totals: Counter[tuple[Any, ...]] = Counter()
    for entry in entries:
        event = entry.event
        if (actor := h.actor_of(event)) is None:
            continue
        if getattr(event, "contribution_id", None) in taken_back and isinstance(
            event, e.ContributionRecorded
        ):
            continue
        if isinstance(event, e.RecognitionGiven) and event.recognition_id in taken_back:
            continue
        day = utc_day(entry.occurred_at)
        for space in h.spaces_of(event.space):  # type: ignore[attr-defined]
            counts = days.setdefault((aliases.resolve(actor[0]), space), {}).setdefault(day, [0, 0])
            counts[0] += actor[1] == 0
            counts[1] += 1
            for period in h.PERIODS:
                totals[(period, space, h.period_start(period, day), h.TOTALS[actor[1]])] += 1
    state = h.State()
    for (member_id, space), by_day in days.items():
        state.days.setdefault(member_id, {})[space] = by_day
    for member_id in state.days:
        h._count_days(state, member_id, +1)
    for total_key, changes in state.totals.items():
        for name, change in zip(h.TOTALS, changes, strict=True):
            totals[(*total_key, name)] += change
    rows = {k: v for k, v in state.rows.items() if v[1]}
    firsts = {k: v for k, v in state.firsts.items() if v[1] is not None}
    spells = {k: v for k, v in state.spells.items() if v}
    histogram = Counter({k: v for k, v in state.histogram.items() if v})
    return rows, firsts, spells, Counter({k: v for k, v in totals.items() if v}), histogram


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
