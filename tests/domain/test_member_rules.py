"""Registering, updating, handles, merging and forgetting members."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.commands import (
    ForgetMember,
    LinkHandle,
    MergeMembers,
    RegisterMember,
    UnlinkHandle,
    UpdateProfile,
)
from domain.errors import (
    HandleAlreadyClaimed,
    HandleNotLinked,
    InvalidField,
    InvalidHandle,
    MemberAlreadyRegistered,
    MemberIsForgotten,
    MemberWasMerged,
    SelfMerge,
    UnknownMembers,
)
from domain.events import (
    HandleLinked,
    HandleUnlinked,
    MemberForgotten,
    MemberProfileUpdated,
    MemberRegistered,
    MembersMerged,
)
from tests.domain.scenarios import ANA, BO, CY, NOBODY, given, registered

JOINED = datetime(2010, 5, 4, 20, 0, tzinfo=UTC)


def test_registering_a_member_records_display_name_handles_and_joined_at() -> None:
    given().when(
        RegisterMember(
            member_id=ANA,
            display_name="  Caroline Di Diego ",
            handles=("Twitter:@CASUDI", "github:casudi"),
            joined_at=JOINED,
        )
    ).then(
        MemberRegistered(
            member_id=ANA,
            display_name="Caroline Di Diego",
            handles=("twitter:@CASUDI", "github:casudi"),
            joined_at=JOINED,
        )
    )


def test_handles_written_twice_in_one_registration_collapse_to_the_first_spelling() -> None:
    command = RegisterMember(
        member_id=ANA, display_name="Ana", handles=("twitter:@CASUDI", "x:casudi", "twitter:Casudi")
    )
    given().when(command).then(
        MemberRegistered(member_id=ANA, display_name="Ana", handles=("twitter:@CASUDI",))
    )


def test_registering_an_id_twice_is_a_conflict() -> None:
    given(registered(ANA)).when(RegisterMember(member_id=ANA, display_name="Ana")).raises(
        MemberAlreadyRegistered, ANA
    )


def test_a_blank_display_name_is_refused() -> None:
    error = given().when(RegisterMember(member_id=ANA, display_name="   ")).raises(InvalidField)
    assert error.field == "display_name"


def test_a_display_name_over_200_characters_is_refused() -> None:
    given().when(RegisterMember(member_id=ANA, display_name="a" * 201)).raises(
        InvalidField, "display_name", "200", "201"
    )


def test_registering_with_a_handle_claimed_by_another_member_is_a_conflict() -> None:
    error = (
        given(registered(BO, "twitter:@casudi"))
        .when(RegisterMember(member_id=ANA, display_name="Ana", handles=("x:@CASUDI",)))
        .raises(HandleAlreadyClaimed, BO, "the twitter handle")
    )
    assert error.owner_id == BO
    assert error.handle == "twitter:@CASUDI" and "CASUDI" not in str(error)


def test_registering_with_an_invalid_handle_says_which_form_is_expected() -> None:
    given().when(RegisterMember(member_id=ANA, display_name="Ana", handles=("casudi",))).raises(
        InvalidHandle, "invalid handle", "platform:name"
    )


def test_updating_a_profile_records_only_the_fields_given() -> None:
    given(registered(ANA)).when(
        UpdateProfile(
            member_id=ANA, bio="Connector.", links=(" https://a.example ", "https://a.example")
        )
    ).then(MemberProfileUpdated(member_id=ANA, bio="Connector.", links=("https://a.example",)))


def test_updating_a_profile_with_no_fields_is_refused() -> None:
    given(registered(ANA)).when(UpdateProfile(member_id=ANA)).raises(InvalidField, "display_name")


def test_updating_a_profile_checks_lengths() -> None:
    scenario = given(registered(ANA))
    scenario.when(UpdateProfile(member_id=ANA, display_name=" ")).raises(InvalidField, "blank")
    scenario.when(UpdateProfile(member_id=ANA, bio="b" * 5001)).raises(InvalidField, "bio", "5000")
    scenario.when(UpdateProfile(member_id=ANA, links=("",))).raises(InvalidField, "links")
    scenario.when(UpdateProfile(member_id=ANA, links=tuple(f"l{i}" for i in range(21)))).raises(
        InvalidField, "links", "20"
    )


def test_updating_an_unknown_member_names_the_id() -> None:
    given().when(UpdateProfile(member_id=NOBODY, bio="x")).raises(UnknownMembers, NOBODY)


def test_linking_a_handle_records_its_display_form() -> None:
    given(registered(ANA)).when(LinkHandle(member_id=ANA, handle=" X:@Casudi ")).then(
        HandleLinked(member_id=ANA, handle="twitter:@Casudi")
    )


def test_linking_a_handle_the_member_already_holds_decides_nothing() -> None:
    given(registered(ANA, "twitter:@CASUDI")).when(
        LinkHandle(member_id=ANA, handle="x:casudi")
    ).then()


def test_linking_a_handle_held_by_another_member_is_a_conflict() -> None:
    given(registered(ANA), registered(BO, "github:octocat")).when(
        LinkHandle(member_id=ANA, handle="github:OctoCat")
    ).raises(HandleAlreadyClaimed, BO, "the github handle")


def test_a_handle_unlinked_by_its_owner_can_be_linked_by_someone_else() -> None:
    given(
        registered(ANA),
        registered(BO, "github:octocat"),
        HandleUnlinked(member_id=BO, handle="github:octocat"),
    ).when(LinkHandle(member_id=ANA, handle="github:octocat")).then(
        HandleLinked(member_id=ANA, handle="github:octocat")
    )


def test_unlinking_a_linked_handle_records_it() -> None:
    given(registered(ANA, "twitter:@CASUDI")).when(
        UnlinkHandle(member_id=ANA, handle="twitter:casudi")
    ).then(HandleUnlinked(member_id=ANA, handle="twitter:casudi"))


def test_unlinking_a_handle_the_member_does_not_hold_is_refused() -> None:
    given(registered(ANA), registered(BO, "twitter:@bo")).when(
        UnlinkHandle(member_id=ANA, handle="twitter:@bo")
    ).raises(HandleNotLinked, ANA, "the twitter handle")


def test_merging_records_survivor_and_duplicate() -> None:
    given(registered(ANA), registered(BO)).when(
        MergeMembers(survivor_id=ANA, duplicate_id=BO)
    ).then(MembersMerged(survivor_id=ANA, duplicate_id=BO))


def test_merging_needs_both_members_registered() -> None:
    given(registered(ANA)).when(MergeMembers(survivor_id=ANA, duplicate_id=NOBODY)).raises(
        UnknownMembers, NOBODY
    )


def test_a_member_cannot_be_merged_into_itself() -> None:
    given(registered(ANA)).when(MergeMembers(survivor_id=ANA, duplicate_id=ANA)).raises(
        SelfMerge, ANA
    )


def test_a_duplicate_cannot_be_merged_twice() -> None:
    given(
        registered(ANA),
        registered(BO),
        registered(CY),
        MembersMerged(survivor_id=ANA, duplicate_id=BO),
    ).when(MergeMembers(survivor_id=CY, duplicate_id=BO)).raises(MemberWasMerged, BO, ANA)


def test_a_forgotten_member_cannot_be_merged() -> None:
    given(registered(ANA), registered(BO), MemberForgotten(member_id=BO)).when(
        MergeMembers(survivor_id=ANA, duplicate_id=BO)
    ).raises(MemberIsForgotten, BO)


def test_a_merged_duplicates_handles_belong_to_the_survivor() -> None:
    scenario = given(
        registered(ANA),
        registered(BO, "twitter:@bo"),
        MembersMerged(survivor_id=ANA, duplicate_id=BO),
    )
    scenario.when(LinkHandle(member_id=ANA, handle="twitter:bo")).then()
    scenario.when(LinkHandle(member_id=CY, handle="twitter:bo")).raises(UnknownMembers, CY)
    scenario.when(UnlinkHandle(member_id=ANA, handle="twitter:@bo")).then(
        HandleUnlinked(member_id=ANA, handle="twitter:@bo")
    )


def test_a_merged_member_takes_no_new_events_and_the_error_names_the_survivor() -> None:
    given(registered(ANA), registered(BO), MembersMerged(survivor_id=ANA, duplicate_id=BO)).when(
        UpdateProfile(member_id=BO, bio="x")
    ).raises(MemberWasMerged, BO, ANA)


def test_forgetting_a_member_records_the_reason() -> None:
    given(registered(ANA)).when(ForgetMember(member_id=ANA, reason="asked by email")).then(
        MemberForgotten(member_id=ANA, reason="asked by email")
    )


def test_forgetting_twice_decides_nothing_so_a_retried_erasure_succeeds() -> None:
    given(registered(ANA), MemberForgotten(member_id=ANA)).when(ForgetMember(member_id=ANA)).then()


def test_forgetting_a_survivor_forgets_every_duplicate_merged_into_it_each_by_its_own_event() -> (
    None
):
    given(
        registered(ANA),
        registered(BO),
        registered(CY),
        MembersMerged(survivor_id=BO, duplicate_id=CY),
        MembersMerged(survivor_id=ANA, duplicate_id=BO),
    ).when(ForgetMember(member_id=ANA, reason="asked")).then(
        MemberForgotten(member_id=ANA, reason="asked"),
        MemberForgotten(member_id=BO),
        MemberForgotten(member_id=CY),
    )


def test_forgetting_a_merged_duplicate_is_refused_and_names_the_survivor() -> None:
    given(registered(ANA), registered(BO), MembersMerged(survivor_id=ANA, duplicate_id=BO)).when(
        ForgetMember(member_id=BO)
    ).raises(MemberWasMerged, BO, ANA)


def test_a_forgotten_members_handle_is_free_to_register_again() -> None:
    given(registered(ANA, "twitter:@ana"), MemberForgotten(member_id=ANA)).when(
        RegisterMember(member_id=BO, display_name="Ana again", handles=("twitter:@ana",))
    ).then(MemberRegistered(member_id=BO, display_name="Ana again", handles=("twitter:@ana",)))


def test_forgetting_an_unknown_member_names_the_id() -> None:
    given().when(ForgetMember(member_id=NOBODY)).raises(UnknownMembers, NOBODY)


def test_a_forgotten_member_takes_no_new_events() -> None:
    scenario = given(registered(ANA, "twitter:@ana"), MemberForgotten(member_id=ANA))
    scenario.when(UpdateProfile(member_id=ANA, bio="x")).raises(MemberIsForgotten, ANA)
    scenario.when(LinkHandle(member_id=ANA, handle="github:ana")).raises(MemberIsForgotten, ANA)
