"""What holds after folding any ledger the rules would accept, however it was put together."""

from __future__ import annotations

from hypothesis import given, settings

from domain import events as e
from domain.projections import (
    Entry,
    connections,
    contribution_counts,
    interaction_counts,
    member_profiles,
)
from tests.domain.projections.strategies import valid_ledgers


def standing_contributions(entries: list[Entry]) -> int:
    recorded = {
        x.event.contribution_id for x in entries if isinstance(x.event, e.ContributionRecorded)
    }
    taken_back = {
        x.event.contribution_id for x in entries if isinstance(x.event, e.ContributionRetracted)
    }
    return len(recorded - taken_back)


@settings(max_examples=200, deadline=None)
@given(valid_ledgers())
def test_every_standing_contribution_is_counted_once_by_a_member_who_was_not_merged(
    entries: list[Entry],
) -> None:
    profiles = member_profiles.fold(member_profiles.State(), entries).profiles
    counts = contribution_counts.fold(contribution_counts.State(), entries).counts

    assert sum(p.contributions_total for p in profiles.values()) == standing_contributions(entries)
    assert sum(counts.values()) == standing_contributions(entries)
    assert all(count > 0 for count in counts.values())
    for p in profiles.values():
        assert sum(p.contributions_by_kind.values()) == p.contributions_total
        assert min(p.contributions_by_kind.values(), default=1) > 0
        if p.merged_into is not None:
            assert p.contributions_total == 0 and p.recognitions_received == 0
    merged = {p.member_id for p in profiles.values() if p.merged_into is not None}
    assert not merged & {member_id for member_id, *_ in counts}


@settings(max_examples=200, deadline=None)
@given(valid_ledgers())
def test_pairs_are_ordered_never_self_never_empty_and_never_name_a_merged_member(
    entries: list[Entry],
) -> None:
    state = connections.fold(connections.State(), entries)
    merged = set(state.aliases.known)

    for (a, b), pair in state.pairs.items():
        assert a < b and (pair.member_a, pair.member_b) == (a, b)
        assert any(pair.counts.values()) and min(pair.counts.values()) >= 0
        assert not {a, b} & merged
        for relation in connections.RELATIONS:
            assert (pair.counts[relation] == 0) == (pair.last_at[relation] is None)


@settings(max_examples=200, deadline=None)
@given(valid_ledgers())
def test_interactions_summed_over_days_are_the_profiles_counters_and_name_no_merged_member(
    entries: list[Entry],
) -> None:
    profiles = member_profiles.fold(member_profiles.State(), entries).profiles
    counts = interaction_counts.fold(interaction_counts.State(), entries).counts

    summed: dict[tuple[object, str], int] = {}
    for (member_id, fact, _day), count in counts.items():
        summed[member_id, fact] = summed.get((member_id, fact), 0) + count
    assert all(count > 0 for count in counts.values())
    assert summed == {
        (p.member_id, fact): getattr(p, fact)
        for p in profiles.values()
        for fact in interaction_counts.FACTS
        if getattr(p, fact)
    }
    assert set(interaction_counts.FACTS) == set(member_profiles.COUNTERS)
