"""Introductions, mentions and recognitions: the connections between members."""

from __future__ import annotations

from domain.commands import (
    GiveRecognition,
    MakeIntroduction,
    RecordMention,
    RegisterMember,
    WithdrawRecognition,
)
from domain.errors import (
    IntroductionAlreadyMade,
    InvalidField,
    MemberIsForgotten,
    MemberWasMerged,
    MentionAlreadyRecorded,
    RecognitionAlreadyGiven,
    RecognitionAlreadyWithdrawn,
    SelfIntroduction,
    SelfMention,
    SelfRecognition,
    TooFewIntroduced,
    UnknownContribution,
    UnknownMembers,
    UnknownRecognition,
    UnknownRecognitionKind,
)
from domain.events import (
    RECOGNITION_KINDS,
    IntroductionMade,
    MemberForgotten,
    MemberRegistered,
    MembersMerged,
    MentionRecorded,
    RecognitionGiven,
    RecognitionWithdrawn,
)
from domain.ids import new_id
from domain.limits import MAX_INTRODUCED
from tests.domain.scenarios import (
    ANA,
    BO,
    CY,
    DEE,
    NOBODY,
    contribution,
    everyone,
    given,
    recognition,
    registered,
)

INTRO, MENTION, KUDOS, ANSWER = new_id(), new_id(), new_id(), new_id()


def introduce(introducer: object = ANA, *introduced: object) -> MakeIntroduction:
    return MakeIntroduction(
        introduction_id=INTRO,
        introducer_id=introducer,  # type: ignore[arg-type]
        introduced_ids=introduced or (BO, CY),  # type: ignore[arg-type]
        note="you both host chats",
        space="kaizenblog",
    )


def test_an_introduction_connects_two_or_more_members() -> None:
    given(*everyone()).when(introduce(ANA, BO, CY, DEE)).then(
        IntroductionMade(
            introduction_id=INTRO,
            introducer_id=ANA,
            introduced_ids=(BO, CY, DEE),
            note="you both host chats",
            space="kaizenblog",
        )
    )


def test_members_named_twice_in_an_introduction_collapse() -> None:
    (event,) = given(*everyone()).when(introduce(ANA, BO, CY, BO)).decide()
    assert event.introduced_ids == (BO, CY)  # type: ignore[attr-defined]


def test_nobody_introduces_themselves() -> None:
    given(*everyone()).when(introduce(ANA, BO, ANA)).raises(SelfIntroduction, ANA)


def test_an_introduction_names_at_least_two_distinct_members() -> None:
    error = given(*everyone()).when(introduce(ANA, BO, BO)).raises(TooFewIntroduced, "1")
    assert error.count == 1


def test_an_introduction_names_at_most_the_limit_of_members() -> None:
    crowd = [new_id() for _ in range(MAX_INTRODUCED + 1)]
    known = given(registered(ANA), *(registered(m) for m in crowd))

    assert known.when(introduce(ANA, *crowd[:MAX_INTRODUCED])).decide()
    known.when(introduce(ANA, *crowd)).raises(
        InvalidField, "introduced", MAX_INTRODUCED, MAX_INTRODUCED + 1
    )


def test_an_introduction_of_unknown_members_names_them() -> None:
    given(*everyone()).when(introduce(ANA, BO, NOBODY)).raises(UnknownMembers, NOBODY)


def test_an_introduction_id_is_used_once() -> None:
    made = IntroductionMade(introduction_id=INTRO, introducer_id=ANA, introduced_ids=(BO, CY))
    given(*everyone(), made).when(introduce()).raises(IntroductionAlreadyMade, INTRO)


def test_a_forgotten_member_cannot_be_introduced() -> None:
    given(*everyone(), MemberForgotten(member_id=CY)).when(introduce()).raises(
        MemberIsForgotten, CY
    )


def test_a_mention_records_who_named_whom() -> None:
    given(*everyone(), contribution(ANSWER)).when(
        RecordMention(mention_id=MENTION, member_id=ANA, mentioned_id=BO, contribution_id=ANSWER)
    ).then(
        MentionRecorded(mention_id=MENTION, member_id=ANA, mentioned_id=BO, contribution_id=ANSWER)
    )


def test_nobody_mentions_themselves() -> None:
    given(*everyone()).when(
        RecordMention(mention_id=MENTION, member_id=ANA, mentioned_id=ANA)
    ).raises(SelfMention, ANA)


def test_a_mention_in_an_unknown_contribution_is_refused() -> None:
    given(*everyone()).when(
        RecordMention(mention_id=MENTION, member_id=ANA, mentioned_id=BO, contribution_id=ANSWER)
    ).raises(UnknownContribution, ANSWER)


def test_a_mention_of_a_merged_member_names_the_survivor() -> None:
    given(*everyone(), MembersMerged(survivor_id=CY, duplicate_id=BO)).when(
        RecordMention(mention_id=MENTION, member_id=ANA, mentioned_id=BO)
    ).raises(MemberWasMerged, BO, CY)


def test_a_mention_id_is_used_once() -> None:
    seen = MentionRecorded(mention_id=MENTION, member_id=ANA, mentioned_id=BO)
    given(*everyone(), seen).when(
        RecordMention(mention_id=MENTION, member_id=ANA, mentioned_id=CY)
    ).raises(MentionAlreadyRecorded, MENTION)


def give(**changes: object) -> GiveRecognition:
    fields: dict[str, object] = {
        "recognition_id": KUDOS,
        "from_id": ANA,
        "to_id": BO,
        "kind": "kudos",
    }
    return GiveRecognition(**(fields | changes))  # type: ignore[arg-type]


def test_a_recognition_records_giver_receiver_kind_and_contribution() -> None:
    given(*everyone(), contribution(ANSWER, BO)).when(
        give(kind="highlight", reason="great recap", contribution_id=ANSWER)
    ).then(
        RecognitionGiven(
            recognition_id=KUDOS,
            from_id=ANA,
            to_id=BO,
            kind="highlight",
            reason="great recap",
            contribution_id=ANSWER,
        )
    )


def test_nobody_recognises_themselves() -> None:
    given(*everyone()).when(give(to_id=ANA)).raises(SelfRecognition, ANA)


def test_a_recognition_kind_must_be_one_of_the_known_kinds() -> None:
    error = (
        given(*everyone()).when(give(kind="medal")).raises(UnknownRecognitionKind, "medal", "kudos")
    )
    assert error.allowed == RECOGNITION_KINDS


def test_a_recognition_of_an_unknown_member_names_the_id() -> None:
    given(*everyone()).when(give(to_id=NOBODY)).raises(UnknownMembers, NOBODY)


def test_a_recognition_for_an_unknown_contribution_is_refused() -> None:
    given(*everyone()).when(give(contribution_id=ANSWER)).raises(UnknownContribution, ANSWER)


def test_a_recognition_id_is_used_once() -> None:
    given(*everyone(), recognition(KUDOS)).when(give(to_id=CY)).raises(
        RecognitionAlreadyGiven, KUDOS
    )


def test_a_forgotten_member_cannot_be_recognised() -> None:
    given(*everyone(), MemberForgotten(member_id=BO)).when(give()).raises(MemberIsForgotten, BO)


def test_withdrawing_a_recognition_names_both_members() -> None:
    given(*everyone(), recognition(KUDOS, ANA, BO)).when(
        WithdrawRecognition(recognition_id=KUDOS, reason="wrong person")
    ).then(RecognitionWithdrawn(recognition_id=KUDOS, from_id=ANA, to_id=BO, reason="wrong person"))


def test_withdrawing_an_unknown_recognition_names_it() -> None:
    given(*everyone()).when(WithdrawRecognition(recognition_id=KUDOS)).raises(
        UnknownRecognition, KUDOS
    )


def test_a_recognition_cannot_be_withdrawn_twice() -> None:
    withdrawn = RecognitionWithdrawn(recognition_id=KUDOS, from_id=ANA, to_id=BO)
    given(*everyone(), recognition(KUDOS), withdrawn).when(
        WithdrawRecognition(recognition_id=KUDOS)
    ).raises(RecognitionAlreadyWithdrawn, KUDOS)


def test_a_batch_sees_members_registered_earlier_in_it() -> None:
    newcomer = new_id()
    given(registered(ANA)).when(
        RegisterMember(member_id=newcomer, display_name="Newcomer"),
        give(to_id=newcomer),
    ).then(
        MemberRegistered(member_id=newcomer, display_name="Newcomer"),
        RecognitionGiven(recognition_id=KUDOS, from_id=ANA, to_id=newcomer, kind="kudos"),
    )


def test_a_failing_batch_says_which_command_broke() -> None:
    error = given(*everyone()).when(give(), give()).raises(RecognitionAlreadyGiven, KUDOS)
    assert "in command 1 of the batch (GiveRecognition)" in error.__notes__
