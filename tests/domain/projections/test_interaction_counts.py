"""Interaction counts by member, fact and UTC day, through withdrawals and merges."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain import events as e
from domain.projections import interaction_counts
from domain.projections.interaction_counts import Key, RecognitionRef, State
from tests.domain.projections.timeline import (
    ANA,
    BO,
    CY,
    DEE,
    START,
    introduced,
    ledger,
    mentioned,
    merged,
    recognised,
    registered,
    withdrawn,
)

DAY = START.date()
NEXT_DAY = DAY + timedelta(days=1)


def counts_after(*items: e.Event | tuple[datetime, e.Event]) -> dict[Key, int]:
    return interaction_counts.fold(State(), ledger(*items)).counts


def test_each_interaction_counts_for_both_sides_on_its_utc_day() -> None:
    counts = counts_after(
        introduced(DEE, ANA, BO, ANA),
        mentioned(BO, CY),
        (START + timedelta(days=1), recognised(CY, ANA)),
    )
    assert counts == {
        (DEE, "introductions_made", DAY): 1,
        (ANA, "introductions_received", DAY): 1,
        (BO, "introductions_received", DAY): 1,
        (BO, "mentions_given", DAY): 1,
        (CY, "mentions_received", DAY): 1,
        (CY, "recognitions_given", NEXT_DAY): 1,
        (ANA, "recognitions_received", NEXT_DAY): 1,
    }


def test_a_withdrawal_takes_the_recognition_back_from_the_day_it_was_given_once() -> None:
    thanks = recognised(CY, ANA)
    counts = counts_after(
        thanks,
        recognised(CY, ANA),
        (START + timedelta(days=3), withdrawn(thanks)),
        (START + timedelta(days=3), withdrawn(thanks)),
    )
    assert counts == {(CY, "recognitions_given", DAY): 1, (ANA, "recognitions_received", DAY): 1}

    alone = interaction_counts.fold(State(), ledger(thanks, withdrawn(thanks)))
    assert alone.counts == {} and alone.changed == set()
    assert alone.removed == {(CY, "recognitions_given", DAY), (ANA, "recognitions_received", DAY)}
    assert alone.recognitions[thanks.recognition_id].withdrawn


def test_a_merge_moves_the_duplicates_rows_onto_the_survivor_and_later_withdrawals_follow() -> None:
    old = recognised(BO, CY)
    counts = counts_after(
        registered(ANA),
        registered(BO),
        recognised(ANA, CY),
        old,
        mentioned(CY, BO),
        merged(BO, into=ANA),
        mentioned(DEE, BO),
        withdrawn(old),
    )
    assert counts == {
        (ANA, "recognitions_given", DAY): 1,
        (CY, "recognitions_received", DAY): 1,
        (CY, "mentions_given", DAY): 1,
        (ANA, "mentions_received", DAY): 2,
        (DEE, "mentions_given", DAY): 1,
    }


def test_rows_needed_names_the_keys_as_they_resolve_and_every_row_a_merge_moves() -> None:
    old = recognised(BO, CY)
    state = State()
    state.recognitions[old.recognition_id] = RecognitionRef(old.recognition_id, BO, CY, DAY)
    keys, members = interaction_counts.rows_needed(
        state, ledger(mentioned(BO, DEE), merged(BO, into=ANA), withdrawn(old))
    )
    assert keys == {
        (BO, "mentions_given", DAY),
        (DEE, "mentions_received", DAY),
        (ANA, "recognitions_given", DAY),
        (CY, "recognitions_received", DAY),
    }
    assert members == {ANA, BO}
    assert state.aliases.known == {}, "planning must not change the state it plans for"
