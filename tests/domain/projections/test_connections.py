"""Connections: undirected pairs with a count and a last moment per relation."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain import events as e
from domain.projections import connections
from domain.projections.connections import Pair, PairKey, State
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
    withdrawn,
)


def pairs_after(*items: e.Event | tuple[datetime, e.Event]) -> dict[PairKey, dict[str, int]]:
    state = connections.fold(State(), ledger(*items))
    return {key: {r: c for r, c in pair.counts.items() if c} for key, pair in state.pairs.items()}


def test_an_introduction_connects_the_introduced_with_each_other_and_with_the_introducer() -> None:
    assert pairs_after(introduced(DEE, ANA, BO, CY)) == {
        (ANA, BO): {"introduced_together": 1},
        (ANA, CY): {"introduced_together": 1},
        (BO, CY): {"introduced_together": 1},
        (ANA, DEE): {"introduced": 1},
        (BO, DEE): {"introduced": 1},
        (CY, DEE): {"introduced": 1},
    }


def test_a_pair_is_one_row_whichever_way_the_relation_points() -> None:
    assert pairs_after(mentioned(BO, ANA), mentioned(ANA, BO), recognised(BO, ANA)) == {
        (ANA, BO): {"mentioned": 2, "recognised": 1}
    }


def test_last_at_is_the_latest_moment_not_the_latest_position() -> None:
    late = START + timedelta(days=10)
    state = connections.fold(State(), ledger((late, mentioned(ANA, BO)), mentioned(BO, ANA)))
    assert state.pairs[ANA, BO].last_at["mentioned"] == late


def test_a_withdrawal_takes_one_back_and_clears_last_at_when_none_is_left() -> None:
    thanks = recognised(ANA, BO)
    state = connections.fold(State(), ledger(thanks, mentioned(ANA, BO), withdrawn(thanks)))
    pair = state.pairs[ANA, BO]
    assert pair.counts["recognised"] == 0 and pair.last_at["recognised"] is None
    assert pair.counts["mentioned"] == 1


def test_a_pair_with_nothing_left_is_removed() -> None:
    thanks = recognised(ANA, BO)
    state = connections.fold(State(), ledger(thanks))
    state = connections.fold(state, ledger(withdrawn(thanks)))
    assert state.pairs == {} and state.removed == {(ANA, BO)} and state.changed == set()


def test_a_merge_moves_the_duplicates_pairs_to_the_survivor_and_drops_their_own() -> None:
    state = connections.fold(
        State(),
        ledger(
            mentioned(BO, CY),
            recognised(ANA, CY),
            mentioned(ANA, BO),
            (START - timedelta(days=1), introduced(DEE, BO, CY)),
            merged(BO, into=ANA),
        ),
    )
    assert {k: {r: c for r, c in p.counts.items() if c} for k, p in state.pairs.items()} == {
        (ANA, CY): {"mentioned": 1, "recognised": 1, "introduced_together": 1},
        (ANA, DEE): {"introduced": 1},
        (CY, DEE): {"introduced": 1},
    }
    assert state.removed == {(ANA, BO), (BO, CY), (BO, DEE)}
    assert state.pairs[ANA, CY].last_at["introduced_together"] == START - timedelta(days=1)


def test_a_withdrawal_after_a_merge_takes_back_from_the_survivors_pair() -> None:
    thanks = recognised(BO, CY)
    assert pairs_after(thanks, recognised(ANA, CY), merged(BO, into=ANA), withdrawn(thanks)) == {
        (ANA, CY): {"recognised": 1}
    }


def test_a_withdrawal_between_two_merged_members_has_nothing_to_take_back() -> None:
    thanks = recognised(BO, ANA)
    state = connections.fold(State(), ledger(thanks, merged(BO, into=ANA), withdrawn(thanks)))
    assert state.pairs == {}


def test_rows_needed_names_pairs_as_they_resolve_and_the_members_a_merge_moves() -> None:
    keys, members = connections.rows_needed(
        State(), ledger(mentioned(BO, CY), merged(BO, into=ANA), recognised(CY, BO))
    )
    assert keys == {(BO, CY), (ANA, CY)} and members == {ANA, BO}


def test_pairs_start_empty_for_every_relation() -> None:
    assert Pair(ANA, BO).counts == dict.fromkeys(connections.RELATIONS, 0)
