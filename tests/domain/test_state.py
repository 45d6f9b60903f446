"""Folding what the ledger knows: the facts the rules decide from."""

from __future__ import annotations

from domain.commands import RecordContribution, RegisterMember
from domain.events import (
    ContributionRetracted,
    HandleLinked,
    HandleUnlinked,
    MemberForgotten,
    MemberProfileUpdated,
    MembersMerged,
    RecognitionWithdrawn,
)
from domain.ids import new_id
from domain.rules import decide_each
from domain.state import ContributionState, Known, MemberState, RecognitionState, evolve, fold
from tests.domain.scenarios import ANA, BO, CY, contribution, recognition, registered


def test_registering_records_the_member_and_its_handle_keys() -> None:
    known = fold([registered(ANA, "Twitter:@CASUDI", name="Caroline")])
    assert known.members[ANA] == MemberState(
        member_id=ANA, display_name="Caroline", handles=frozenset({"twitter:casudi"})
    )
    assert known.handle_owners == {"twitter:casudi": ANA}


def test_evolve_returns_a_new_snapshot_and_leaves_the_old_one_alone() -> None:
    before = fold([registered(ANA)])
    after = evolve(before, HandleLinked(member_id=ANA, handle="github:ana"))
    assert before.handle_owners == {}
    assert before.members[ANA].handles == frozenset()
    assert after.owner_of("github:ana") == ANA


def test_profile_updates_change_the_display_name_only_when_given() -> None:
    known = fold(
        [
            registered(ANA, name="Ana"),
            MemberProfileUpdated(member_id=ANA, bio="x"),
            MemberProfileUpdated(member_id=ANA, display_name="Ana L."),
        ]
    )
    assert known.members[ANA].display_name == "Ana L."


def test_unlinking_releases_the_handle() -> None:
    known = fold(
        [registered(ANA, "github:ana"), HandleUnlinked(member_id=ANA, handle="GitHub:Ana")]
    )
    assert known.owner_of("github:ana") is None
    assert known.members[ANA].handles == frozenset()


def test_a_merge_moves_the_duplicates_handles_to_the_survivor() -> None:
    known = fold(
        [
            registered(ANA, "twitter:@ana"),
            registered(BO, "github:bo"),
            MembersMerged(survivor_id=ANA, duplicate_id=BO),
        ]
    )
    assert known.members[BO].merged_into == ANA
    assert known.members[ANA].handles == {"twitter:ana", "github:bo"}
    assert known.owner_of("github:bo") == ANA


def test_merges_are_followed_to_the_last_survivor() -> None:
    known = fold(
        [
            *(registered(member) for member in (ANA, BO, CY)),
            MembersMerged(survivor_id=BO, duplicate_id=ANA),
            MembersMerged(survivor_id=CY, duplicate_id=BO),
        ]
    )
    assert known.survivor_of(ANA) == CY


def test_handle_events_alone_still_say_who_owns_a_handle() -> None:
    """The services layer may load only a handle's tagged events."""
    known = fold([HandleLinked(member_id=ANA, handle="x:@ana")])
    assert known.owner_of("twitter:ana") == ANA
    assert ANA not in known.members


def test_forgetting_erases_the_name_and_frees_the_handles() -> None:
    known = fold([registered(ANA, "twitter:@ana", name="Ana"), MemberForgotten(member_id=ANA)])
    assert known.members[ANA].forgotten
    assert known.members[ANA].display_name == ""
    assert known.owner_of("twitter:ana") is None
    assert known.members[ANA].handles == frozenset()


def test_an_erased_members_handle_events_fold_without_a_handle() -> None:
    """Opened without the key, a handle reads as "" (domain/personal.py BLANKS)."""
    known = fold([registered(ANA, name=""), HandleLinked(member_id=ANA, handle="")])
    assert known.handle_owners == {}


def test_retractions_and_withdrawals_are_known_even_without_the_original() -> None:
    work, kudos = new_id(), new_id()
    known = fold(
        [
            ContributionRetracted(contribution_id=work, member_id=ANA),
            RecognitionWithdrawn(recognition_id=kudos, from_id=ANA, to_id=BO),
        ]
    )
    assert known.contributions[work] == ContributionState(
        contribution_id=work, member_id=ANA, retracted=True
    )
    assert known.recognitions[kudos] == RecognitionState(
        recognition_id=kudos, from_id=ANA, to_id=BO, withdrawn=True
    )


def test_fold_continues_from_a_given_snapshot() -> None:
    work, kudos = new_id(), new_id()
    first = fold([registered(ANA), contribution(work)])
    second = fold([recognition(kudos)], first)
    assert set(second.contributions) == {work}
    assert set(second.recognitions) == {kudos}
    assert Known.empty() == Known()


def test_deciding_a_batch_sees_earlier_commands_and_leaves_the_given_state_alone() -> None:
    known = fold([registered(ANA)])
    newcomer = new_id()
    decided = decide_each(
        [
            RegisterMember(member_id=newcomer, display_name="New", handles=("twitter:@new",)),
            RecordContribution(
                contribution_id=new_id(), member_id=newcomer, kind="answer", space="forum"
            ),
        ],
        known,
    )

    assert [len(events) for events in decided] == [1, 1]
    assert set(known.members) == {ANA} and known.handle_owners == {}
