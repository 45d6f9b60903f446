"""Member profiles: identity, counts and activity, through retractions, merges and forgetting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from domain import events as e
from domain.projections import member_profiles
from domain.projections.member_profiles import Profile, State
from tests.domain.projections.timeline import (
    ANA,
    BO,
    CY,
    START,
    contributed,
    forgotten,
    introduced,
    ledger,
    mentioned,
    merged,
    recognised,
    registered,
    retracted,
    withdrawn,
)


def profiles_after(*items: e.Event | tuple[datetime, e.Event]) -> dict[UUID, Profile]:
    return member_profiles.fold(State(), ledger(*items)).profiles


def counts(profile: Profile) -> dict[str, int]:
    return {name: getattr(profile, name) for name in member_profiles.COUNTERS}


def test_registration_sets_name_handles_and_joined_at_falling_back_to_when_it_happened() -> None:
    joined = datetime(2020, 5, 1, tzinfo=UTC)
    profiles = profiles_after(
        e.MemberRegistered(member_id=ANA, display_name="Ana", handles=("twitter:@Ana",)),
        (START, e.MemberRegistered(member_id=BO, display_name="Bo", joined_at=joined)),
    )
    assert (profiles[ANA].display_name, profiles[ANA].handles) == ("Ana", ["twitter:@Ana"])
    assert profiles[ANA].joined_at == START + timedelta(hours=1)
    assert profiles[BO].joined_at == joined


def test_profile_updates_change_only_what_they_name_and_handles_compare_by_key() -> None:
    profiles = profiles_after(
        registered(ANA, "twitter:@Ana", name="Ana"),
        e.MemberProfileUpdated(member_id=ANA, bio="mentor", links=("https://ana.example",)),
        e.MemberProfileUpdated(member_id=ANA, display_name="Ana L."),
        e.HandleLinked(member_id=ANA, handle="x:@ANA"),
        e.HandleLinked(member_id=ANA, handle="github:ana"),
        e.HandleUnlinked(member_id=ANA, handle="Twitter:ana"),
    )
    ana = profiles[ANA]
    assert (ana.display_name, ana.bio, ana.links) == ("Ana L.", "mentor", ["https://ana.example"])
    assert ana.handles == ["github:ana"]


def test_contributions_count_in_total_and_by_kind_and_make_the_member_active() -> None:
    early, late = START - timedelta(days=3), START + timedelta(days=3)
    profiles = profiles_after(
        registered(ANA),
        (late, contributed(ANA, "article")),
        (early, contributed(ANA, "recap")),
        contributed(ANA, "article"),
    )
    ana = profiles[ANA]
    assert ana.contributions_total == 3
    assert ana.contributions_by_kind == {"article": 2, "recap": 1}
    assert (ana.first_active_at, ana.last_active_at) == (early, late)


def test_a_retraction_takes_back_the_contribution_from_its_own_kind() -> None:
    article = contributed(ANA, "article")
    profiles = profiles_after(
        registered(ANA), article, contributed(ANA, "recap"), retracted(article), retracted(article)
    )
    assert profiles[ANA].contributions_total == 1
    assert profiles[ANA].contributions_by_kind == {"recap": 1}


def test_a_retraction_of_a_contribution_never_seen_changes_nothing() -> None:
    state = member_profiles.fold(State(), ledger(retracted(contributed(ANA))))
    assert state.profiles == {} and state.changed_profiles == set()


def test_givers_are_active_and_receivers_are_counted_but_not_made_active() -> None:
    thanks = recognised(BO, CY)
    profiles = profiles_after(
        registered(ANA),
        registered(BO),
        registered(CY),
        introduced(ANA, BO, CY),
        mentioned(BO, ANA),
        thanks,
        recognised(ANA, CY),
        withdrawn(thanks),
    )
    assert counts(profiles[ANA]) == {
        "introductions_made": 1,
        "introductions_received": 0,
        "mentions_given": 0,
        "mentions_received": 1,
        "recognitions_given": 1,
        "recognitions_received": 0,
    }
    assert (profiles[BO].introductions_received, profiles[BO].mentions_given) == (1, 1)
    assert (profiles[BO].recognitions_given, profiles[CY].recognitions_received) == (0, 1)
    assert profiles[CY].first_active_at is None and profiles[CY].last_active_at is None
    assert profiles[BO].last_active_at == START + timedelta(hours=6)


def test_a_merge_adds_the_duplicates_history_to_the_survivor_and_leaves_a_pointer() -> None:
    early = START - timedelta(days=30)
    profiles = profiles_after(
        registered(ANA, "github:ana"),
        (early, e.MemberRegistered(member_id=BO, display_name="Ana (old)", handles=("x:@ana",))),
        contributed(ANA, "article"),
        (early, contributed(BO, "article")),
        contributed(BO, "recap"),
        recognised(BO, CY),
        merged(BO, into=ANA),
    )
    ana, bo = profiles[ANA], profiles[BO]
    assert ana.contributions_total == 3
    assert ana.contributions_by_kind == {"article": 2, "recap": 1}
    assert ana.recognitions_given == 1
    assert (ana.joined_at, ana.first_active_at) == (early, early)
    assert ana.handles == ["github:ana", "x:@ana"]
    assert bo.merged_into == ANA and bo.display_name == "Ana (old)"
    assert (bo.contributions_total, bo.contributions_by_kind, bo.handles) == (0, {}, [])
    assert set(counts(bo).values()) == {0}
    assert bo.first_active_at is None and bo.last_active_at is None


def test_retractions_and_withdrawals_after_a_merge_count_against_the_survivor() -> None:
    answer, thanks = contributed(BO, "chat_answer"), recognised(BO, CY)
    profiles = profiles_after(
        registered(ANA),
        registered(BO),
        registered(CY),
        answer,
        contributed(ANA, "chat_answer"),
        thanks,
        merged(BO, into=ANA),
        retracted(answer),
        withdrawn(thanks),
    )
    assert profiles[ANA].contributions_by_kind == {"chat_answer": 1}
    assert (profiles[ANA].contributions_total, profiles[ANA].recognitions_given) == (1, 0)
    assert profiles[CY].recognitions_received == 0
    assert profiles[BO].contributions_total == 0 and profiles[BO].recognitions_given == 0


def test_merges_chain_so_a_retraction_reaches_the_last_survivor() -> None:
    answer = contributed(CY)
    profiles = profiles_after(
        registered(ANA),
        registered(BO),
        registered(CY),
        answer,
        merged(CY, into=BO),
        merged(BO, into=ANA),
        retracted(answer),
    )
    assert profiles[ANA].contributions_total == 0
    assert (profiles[CY].merged_into, profiles[BO].merged_into) == (BO, ANA)


def test_forgetting_clears_personal_data_of_the_member_and_its_duplicates_but_keeps_counts() -> (
    None
):
    profiles = profiles_after(
        registered(ANA, "github:ana", name="Ana"),
        registered(BO, "x:@ana", name="Ana again"),
        e.MemberProfileUpdated(member_id=ANA, bio="hi", links=("https://ana.example",)),
        contributed(ANA),
        merged(BO, into=ANA),
        forgotten(ANA),
    )
    for member_id in (ANA, BO):
        p = profiles[member_id]
        assert (p.display_name, p.handles, p.bio, p.links, p.forgotten) == ("", [], "", [], True)
    assert profiles[ANA].contributions_total == 1


def test_each_row_remembers_the_last_position_that_changed_it() -> None:
    state = member_profiles.fold(
        State(), ledger(registered(ANA), registered(BO), mentioned(ANA, BO), contributed(BO))
    )
    assert state.profiles[ANA].updated_position == 3
    assert state.profiles[BO].updated_position == 4
    assert state.changed_profiles == {ANA, BO}


class Unheard(e.Event, frozen=True, tag="Unheard"):
    member_id: UUID


def test_events_the_fold_does_not_know_are_ignored() -> None:
    state = member_profiles.fold(State(), ledger(Unheard(member_id=ANA)))
    assert state.profiles == {} and state.changed_profiles == set()
