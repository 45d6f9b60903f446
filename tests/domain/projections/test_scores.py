"""connector scores, given a ledger, when folded, then the components counted by hand.

Pairs that took come from the introductions read model (its own scenarios); here the
counted components, brokerage on the connection graph, and the formulas' sums.
"""

from __future__ import annotations

from uuid import UUID

import msgspec
import pytest

from domain import events as e
from domain import scores as registry
from domain.brokerage import brokerage
from domain.projections import connections, scores
from domain.scores import CONNECTOR_V1, CONNECTOR_V2_DRAFT, Formula
from tests.domain.projections.timeline import (
    ANA,
    BO,
    CY,
    DEE,
    forgotten,
    introduced,
    ledger,
    mentioned,
    merged,
    recognised,
    withdrawn,
)


class Given:
    def __init__(self, *history: e.Event) -> None:
        self.entries = ledger(*history)

    def components(self, formula: Formula) -> dict[UUID, dict[str, float]]:
        """Per member, every counted component and brokerage (pairs_took left at 0)."""
        state = scores.fold(scores.State(components=formula.counted), self.entries)
        graph = connections.fold(connections.State(), self.entries)
        found: dict[UUID, dict[str, float]] = {}
        for (member, component), value in state.totals.items():
            found.setdefault(member, {})[component] = value
        for member, value in brokerage(graph.pairs)[0].items():
            found.setdefault(member, {})["brokerage"] = value
        return found

    def values(self, formula: Formula) -> dict[UUID, float]:
        return {m: formula.value(c) for m, c in self.components(formula).items()}


def test_reach_counts_each_member_once_however_they_were_reached() -> None:
    given = Given(introduced(ANA, BO, CY), mentioned(ANA, BO), recognised(ANA, BO))
    # then: ANA reached BO and CY (2), recognised BO (1); introduced together, BO and CY are
    # linked, so the graph is a triangle and nobody is between two others.
    assert given.components(CONNECTOR_V1) == {ANA: {"reach": 2, "recognitions_given": 1}}
    assert given.values(CONNECTOR_V1) == {ANA: 2 + 1}


def test_a_withdrawn_recognition_no_longer_counts_but_a_second_one_to_the_same_member_does() -> (
    None
):
    first, second = recognised(ANA, BO), recognised(ANA, BO)
    assert Given(first, second, withdrawn(first)).components(CONNECTOR_V1) == {
        ANA: {"reach": 1, "recognitions_given": 1}
    }
    assert Given(first, withdrawn(first)).components(CONNECTOR_V1) == {}


def test_a_merge_gives_the_survivor_the_duplicates_history_on_either_side() -> None:
    # given: DEE is a duplicate of ANA; DEE recognised BO, CY mentioned DEE, ANA mentioned CY.
    given = Given(recognised(DEE, BO), mentioned(CY, DEE), mentioned(ANA, CY), merged(DEE, ANA))
    # then: ANA reached BO (as DEE) and CY (once, though twice counted before the merge);
    # CY reached ANA (who was DEE); DEE holds nothing. Graph ANA-BO, ANA-CY: ANA brokers.
    assert given.components(CONNECTOR_V1) == {
        ANA: {"reach": 2, "recognitions_given": 1, "brokerage": 100.0},
        CY: {"reach": 1},
    }


def test_a_merge_of_two_members_who_reached_each_other_counts_nobody_reached() -> None:
    given = Given(mentioned(ANA, DEE), recognised(DEE, ANA), merged(DEE, ANA))
    assert given.components(CONNECTOR_V1) == {}


def test_an_erased_members_numbers_stay_counted() -> None:
    story = (introduced(ANA, BO, CY), recognised(BO, ANA), mentioned(CY, BO))
    assert Given(*story, forgotten(ANA)).components(CONNECTOR_V1) == Given(*story).components(
        CONNECTOR_V1
    )


def test_v1_and_v2_side_by_side_from_one_ledger_show_how_the_change_moves_each_member() -> None:
    # given: ANA introduces BO and CY; BO mentions DEE; CY and DEE recognise BO.
    given = Given(
        introduced(ANA, BO, CY), mentioned(BO, DEE), recognised(CY, BO), recognised(DEE, BO)
    )
    # Graph: ANA-BO, ANA-CY, BO-CY, BO-DEE. Paths between others through BO: ANA-DEE, CY-DEE
    # (2 of the 3 pairs without BO); through ANA: none (BO-CY are linked).
    v1, v2 = given.components(CONNECTOR_V1), given.components(CONNECTOR_V2_DRAFT)
    assert v1 == {
        ANA: {"reach": 2},
        BO: {"reach": 1, "brokerage": 66.6667},
        CY: {"reach": 1, "recognitions_given": 1},
        DEE: {"reach": 1, "recognitions_given": 1},
    }
    # v2 adds who sought a member out: BO by CY and DEE (and by nobody twice); DEE by BO.
    assert v2[BO] == {"reach": 1, "sought_out": 2, "brokerage": 66.6667}
    assert v2[DEE] == {"reach": 1, "recognitions_given": 1, "sought_out": 1}
    assert given.values(CONNECTOR_V1) == {ANA: 2.0, BO: 67.6667, CY: 2.0, DEE: 2.0}
    assert given.values(CONNECTOR_V2_DRAFT) == {ANA: 2.0, BO: 68.6667, CY: 2.0, DEE: 2.5}


def test_brokerage_sampled_past_the_limit_is_the_same_on_every_run() -> None:
    ring = [(UUID(int=i), UUID(int=(i % 40) + 1)) for i in range(1, 41)]
    first, sources = brokerage(ring, sample=10)
    assert sources == 10
    assert brokerage(ring, sample=10) == (first, 10)
    exact, _ = brokerage(ring)
    # A ring: every member is on the same share of paths; the estimate is near it.
    assert len(set(exact.values())) == 1
    assert all(abs(v - exact[m]) < exact[m] for m, v in first.items())


def test_the_newest_published_version_answers_and_a_retired_one_is_named_so() -> None:
    v1 = msgspec.structs.replace(CONNECTOR_V1, status="retired")
    formulas = (v1, CONNECTOR_V2_DRAFT)

    assert registry.built(formulas) == (CONNECTOR_V2_DRAFT,)
    assert registry.find("connector", None, formulas) is CONNECTOR_V2_DRAFT
    for name, version, said in (
        ("connector", 1, "version 1 is retired"),
        ("connector", 3, "has no version 3; it has: 1, 2"),
        ("nosuch", None, "no score 'nosuch'"),
    ):
        with pytest.raises(LookupError, match=said):
            registry.find(name, version, formulas)
