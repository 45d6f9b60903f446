"""Contribution counts by member, kind, space and UTC day, through retractions and merges."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from domain import events as e
from domain.projections import contribution_counts
from domain.projections.contribution_counts import Key, State
from tests.domain.projections.timeline import (
    ANA,
    BO,
    START,
    contributed,
    ledger,
    merged,
    registered,
    retracted,
)

DAY = START.date()


def counts_after(*items: e.Event | tuple[datetime, e.Event]) -> dict[Key, int]:
    return contribution_counts.fold(State(), ledger(*items)).counts


def test_contributions_count_per_member_kind_space_and_day() -> None:
    counts = counts_after(
        contributed(ANA, "chat_answer", "kaizenblog"),
        contributed(ANA, "chat_answer", "kaizenblog"),
        contributed(ANA, "recap", "kaizenblog"),
        contributed(ANA, "chat_answer", "forum"),
        (START + timedelta(days=1), contributed(BO, "chat_answer", "kaizenblog")),
    )
    assert counts == {
        (ANA, "chat_answer", "kaizenblog", DAY): 2,
        (ANA, "recap", "kaizenblog", DAY): 1,
        (ANA, "chat_answer", "forum", DAY): 1,
        (BO, "chat_answer", "kaizenblog", DAY + timedelta(days=1)): 1,
    }


def test_the_day_is_the_utc_date_of_when_it_happened() -> None:
    evening_in_sao_paulo = datetime(2025, 3, 1, 22, 30, tzinfo=timezone(timedelta(hours=-3)))
    counts = counts_after((evening_in_sao_paulo, contributed(ANA)))
    assert list(counts) == [(ANA, "chat_answer", "kaizenblog", date(2025, 3, 2))]


def test_a_retraction_decrements_and_a_count_at_zero_leaves_no_row() -> None:
    first, second = contributed(ANA), contributed(ANA)
    state = contribution_counts.fold(
        State(), ledger(first, second, retracted(first), retracted(first))
    )
    assert state.counts == {(ANA, "chat_answer", "kaizenblog", DAY): 1}
    state = contribution_counts.fold(state, ledger(retracted(second)))
    assert state.counts == {}
    assert state.removed == {(ANA, "chat_answer", "kaizenblog", DAY)} and state.changed == set()


def test_a_merge_moves_the_duplicates_rows_onto_the_survivor_summing_where_they_meet() -> None:
    counts = counts_after(
        registered(ANA),
        registered(BO),
        contributed(ANA, "recap"),
        contributed(BO, "recap"),
        contributed(BO, "article"),
        merged(BO, into=ANA),
    )
    assert counts == {
        (ANA, "recap", "kaizenblog", DAY): 2,
        (ANA, "article", "kaizenblog", DAY): 1,
    }


def test_a_retraction_after_a_merge_decrements_the_survivor() -> None:
    old = contributed(BO, "article")
    counts = counts_after(old, contributed(ANA, "recap"), merged(BO, into=ANA), retracted(old))
    assert counts == {(ANA, "recap", "kaizenblog", DAY): 1}


def test_rows_needed_names_the_keys_as_they_resolve_and_every_row_a_merge_moves() -> None:
    old = contributed(BO, "article")
    state = State()
    state.contributions[old.contribution_id] = contribution_counts.ContributionRef(
        old.contribution_id, BO, "article", "forum", DAY
    )
    keys, members = contribution_counts.rows_needed(
        state, ledger(contributed(BO, "recap"), merged(BO, into=ANA), retracted(old))
    )
    assert keys == {(BO, "recap", "kaizenblog", DAY), (ANA, "article", "forum", DAY)}
    assert members == {ANA, BO}
    assert state.aliases.known == {}, "planning must not change the state it plans for"
