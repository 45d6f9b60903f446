"""Recording and retracting contributions."""

from __future__ import annotations

import pytest

from domain.commands import RecordContribution, RetractContribution
from domain.errors import (
    ContributionAlreadyRecorded,
    ContributionAlreadyRetracted,
    InvalidField,
    MemberIsForgotten,
    MemberWasMerged,
    UnknownContribution,
    UnknownMembers,
)
from domain.events import (
    ContributionRecorded,
    ContributionRetracted,
    MemberForgotten,
    MembersMerged,
)
from domain.ids import new_id
from tests.domain.scenarios import ANA, BO, NOBODY, contribution, given, registered

ANSWER, QUESTION = new_id(), new_id()


def record(**changes: object) -> RecordContribution:
    fields: dict[str, object] = {
        "contribution_id": ANSWER,
        "member_id": ANA,
        "kind": "chat_answer",
        "space": "kaizenblog",
    }
    return RecordContribution(**(fields | changes))  # type: ignore[arg-type]


def test_recording_a_contribution_keeps_every_field() -> None:
    given(registered(ANA), contribution(QUESTION, BO)).when(
        record(
            title="Q1",
            body="Connections are shortcuts.",
            url="https://example.org/t/1",
            attributes={"question": "Q1"},
            reply_to=QUESTION,
        )
    ).then(
        ContributionRecorded(
            contribution_id=ANSWER,
            member_id=ANA,
            kind="chat_answer",
            space="kaizenblog",
            title="Q1",
            body="Connections are shortcuts.",
            url="https://example.org/t/1",
            attributes={"question": "Q1"},
            reply_to=QUESTION,
        )
    )


def test_a_custom_kind_is_allowed_when_it_is_a_slug() -> None:
    given(registered(ANA)).when(record(kind="podcast_episode")).then(
        ContributionRecorded(
            contribution_id=ANSWER, member_id=ANA, kind="podcast_episode", space="kaizenblog"
        )
    )


def test_recording_for_an_unknown_member_names_the_id() -> None:
    given().when(record(member_id=NOBODY)).raises(UnknownMembers, NOBODY)


def test_recording_the_same_contribution_id_twice_is_a_conflict() -> None:
    given(registered(ANA), contribution(ANSWER)).when(record()).raises(
        ContributionAlreadyRecorded, ANSWER
    )


@pytest.mark.parametrize("kind", ["Chat_Answer", "chat answer", "1st", "", "a" * 65])
def test_a_kind_that_is_not_a_lowercase_slug_is_refused(kind: str) -> None:
    error = given(registered(ANA)).when(record(kind=kind)).raises(InvalidField, repr(kind))
    assert error.field == "kind"


@pytest.mark.parametrize("space", ["KaizenBlog", "kaizen blog", "-x", "", "a" * 101])
def test_a_space_that_is_not_a_lowercase_slug_is_refused(space: str) -> None:
    error = given(registered(ANA)).when(record(space=space)).raises(InvalidField, "lowercase")
    assert error.field == "space"


def test_a_space_in_capitals_gets_a_hint() -> None:
    given(registered(ANA)).when(record(space="KaizenBlog")).raises(InvalidField, "'kaizenblog'")


def test_a_reply_to_an_unknown_contribution_is_refused() -> None:
    given(registered(ANA)).when(record(reply_to=QUESTION)).raises(UnknownContribution, QUESTION)


@pytest.mark.parametrize(("field", "most"), [("title", 500), ("body", 20_000), ("url", 2_000)])
def test_text_fields_have_limits(field: str, most: int) -> None:
    given(registered(ANA)).when(record(**{field: "x" * (most + 1)})).raises(
        InvalidField, field, str(most)
    )


def test_attributes_have_limits() -> None:
    scenario = given(registered(ANA))
    scenario.when(record(attributes={" ": "x"})).raises(InvalidField, "attributes")
    scenario.when(record(attributes={"q": "x" * 2001})).raises(InvalidField, "attributes.q")
    many = {f"k{i}": "v" for i in range(51)}
    scenario.when(record(attributes=many)).raises(InvalidField, "50")


def test_a_forgotten_member_records_nothing() -> None:
    given(registered(ANA), MemberForgotten(member_id=ANA)).when(record()).raises(
        MemberIsForgotten, ANA
    )


def test_a_merged_member_records_nothing() -> None:
    given(registered(ANA), registered(BO), MembersMerged(survivor_id=BO, duplicate_id=ANA)).when(
        record()
    ).raises(MemberWasMerged, ANA, BO)


def test_retracting_carries_the_contributions_member() -> None:
    given(registered(BO), contribution(ANSWER, BO)).when(
        RetractContribution(contribution_id=ANSWER, reason="posted twice")
    ).then(ContributionRetracted(contribution_id=ANSWER, member_id=BO, reason="posted twice"))


def test_retracting_an_unknown_contribution_names_it() -> None:
    given(registered(ANA)).when(RetractContribution(contribution_id=ANSWER)).raises(
        UnknownContribution, ANSWER
    )


def test_a_retracted_contribution_cannot_be_retracted_again() -> None:
    given(
        registered(ANA),
        contribution(ANSWER),
        ContributionRetracted(contribution_id=ANSWER, member_id=ANA),
    ).when(RetractContribution(contribution_id=ANSWER)).raises(ContributionAlreadyRetracted, ANSWER)


def test_a_forgotten_members_contribution_cannot_be_retracted() -> None:
    given(registered(ANA), contribution(ANSWER), MemberForgotten(member_id=ANA)).when(
        RetractContribution(contribution_id=ANSWER)
    ).raises(MemberIsForgotten, ANA)


def test_a_merged_members_contribution_can_still_be_retracted() -> None:
    given(
        registered(ANA),
        registered(BO),
        contribution(ANSWER, BO),
        MembersMerged(survivor_id=ANA, duplicate_id=BO),
    ).when(RetractContribution(contribution_id=ANSWER)).then(
        ContributionRetracted(contribution_id=ANSWER, member_id=BO)
    )


def test_a_contribution_and_a_reply_to_it_can_be_recorded_in_one_batch() -> None:
    reply = record(contribution_id=QUESTION, member_id=BO, reply_to=ANSWER)
    decided = given(registered(ANA), registered(BO)).when(record(), reply).decide()
    assert [event.contribution_id for event in decided] == [ANSWER, QUESTION]  # type: ignore[attr-defined]
