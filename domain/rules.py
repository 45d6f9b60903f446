"""The rules: one pure decider per command, returning the events it produces or raising.

The member rules (registration, profile, handles, merges, erasure) are in
`domain.member_rules`; the activity rules (contributions, introductions, mentions,
recognitions) are here beside `decide`.

Every path that writes (API, importers, CLI) loads `Known`, calls `decide`, and appends
what it returns, so a rule holds the same wherever a command comes from.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from domain import checks, limits
from domain.commands import (
    Command,
    ForgetMember,
    GiveRecognition,
    LinkHandle,
    MakeIntroduction,
    MergeMembers,
    RecordContribution,
    RecordMention,
    RegisterMember,
    RetractContribution,
    UnlinkHandle,
    UpdateProfile,
    WithdrawRecognition,
)
from domain.errors import (
    ContributionAlreadyRecorded,
    ContributionAlreadyRetracted,
    IntroductionAlreadyMade,
    InvalidField,
    MentionAlreadyRecorded,
    RecognitionAlreadyGiven,
    RecognitionAlreadyWithdrawn,
    SelfIntroduction,
    SelfMention,
    SelfRecognition,
    TooFewIntroduced,
    UnknownContribution,
    UnknownRecognition,
    UnknownRecognitionKind,
)
from domain.events import (
    RECOGNITION_KINDS,
    ContributionRecorded,
    ContributionRetracted,
    Event,
    IntroductionMade,
    MentionRecorded,
    RecognitionGiven,
    RecognitionWithdrawn,
)
from domain.member_rules import (
    forget_member,
    link_handle,
    merge_members,
    register_member,
    unlink_handle,
    update_profile,
)
from domain.state import Folding, Known


def decide(command: Command, known: Known) -> list[Event]:
    """The events `command` produces given what the ledger knows; raises if a rule breaks."""
    match command:
        case RegisterMember():
            return register_member(command, known)
        case UpdateProfile():
            return update_profile(command, known)
        case LinkHandle():
            return link_handle(command, known)
        case UnlinkHandle():
            return unlink_handle(command, known)
        case MergeMembers():
            return merge_members(command, known)
        case ForgetMember():
            return forget_member(command, known)
        case RecordContribution():
            return record_contribution(command, known)
        case RetractContribution():
            return retract_contribution(command, known)
        case MakeIntroduction():
            return make_introduction(command, known)
        case RecordMention():
            return record_mention(command, known)
        case GiveRecognition():
            return give_recognition(command, known)
        case WithdrawRecognition():
            return withdraw_recognition(command, known)
    raise TypeError(f"no rule decides {type(command).__name__}")


def decide_all(commands: Iterable[Command], known: Known) -> list[Event]:
    """Decide a batch in order, each command seeing the events of those before it."""
    return [event for decided in decide_each(commands, known) for event in decided]


def decide_each(commands: Iterable[Command], known: Known) -> list[list[Event]]:
    """Like `decide_all`, keeping which events each command produced."""
    produced: list[list[Event]] = []
    folding = Folding(known)
    for index, command in enumerate(commands):
        try:
            decided = decide(command, folding.view())
        except Exception as error:
            error.add_note(f"in command {index} of the batch ({type(command).__name__})")
            raise
        for event in decided:
            folding.apply(event)
        produced.append(decided)
    return produced


def record_contribution(cmd: RecordContribution, known: Known) -> list[Event]:
    if cmd.contribution_id in known.contributions:
        raise ContributionAlreadyRecorded(cmd.contribution_id)
    checks.require_active(known, [cmd.member_id])
    if cmd.reply_to is not None and cmd.reply_to not in known.contributions:
        raise UnknownContribution(cmd.reply_to)
    return [
        ContributionRecorded(
            contribution_id=cmd.contribution_id,
            member_id=cmd.member_id,
            kind=checks.kind(cmd.kind),
            space=checks.space(cmd.space),
            title=checks.limit("title", cmd.title, limits.MAX_TITLE),
            body=checks.limit("body", cmd.body, limits.MAX_BODY),
            url=checks.limit("url", cmd.url, limits.MAX_URL),
            attributes=checks.attributes(cmd.attributes),
            reply_to=cmd.reply_to,
        )
    ]


def retract_contribution(cmd: RetractContribution, known: Known) -> list[Event]:
    """`Known` must hold the contribution's member too: a forgotten author's work stays put.

    A merged author's contributions can still be retracted: they are corrections of
    records that now count for the survivor, not new activity.
    """
    contribution = known.contributions.get(cmd.contribution_id)
    if contribution is None:
        raise UnknownContribution(cmd.contribution_id)
    if contribution.retracted:
        raise ContributionAlreadyRetracted(cmd.contribution_id)
    checks.require_not_forgotten(known, contribution.member_id)
    return [
        ContributionRetracted(
            contribution_id=cmd.contribution_id,
            member_id=contribution.member_id,
            reason=checks.limit("reason", cmd.reason, limits.MAX_NOTE),
        )
    ]


def make_introduction(cmd: MakeIntroduction, known: Known) -> list[Event]:
    if cmd.introduction_id in known.introductions:
        raise IntroductionAlreadyMade(cmd.introduction_id)
    introduced = tuple(dict.fromkeys(cmd.introduced_ids))
    checks.require_registered(known, [cmd.introducer_id, *introduced])
    if cmd.introducer_id in introduced:
        raise SelfIntroduction(cmd.introducer_id)
    if len(introduced) < limits.MIN_INTRODUCED:
        raise TooFewIntroduced(len(introduced))
    if len(introduced) > limits.MAX_INTRODUCED:
        raise InvalidField(
            "introduced", f"at most {limits.MAX_INTRODUCED} members, got {len(introduced)}"
        )
    checks.require_active(known, [cmd.introducer_id, *introduced])
    return [
        IntroductionMade(
            introduction_id=cmd.introduction_id,
            introducer_id=cmd.introducer_id,
            introduced_ids=introduced,
            note=checks.limit("note", cmd.note, limits.MAX_NOTE),
            space=checks.space(cmd.space, required=False),
        )
    ]


def record_mention(cmd: RecordMention, known: Known) -> list[Event]:
    if cmd.mention_id in known.mentions:
        raise MentionAlreadyRecorded(cmd.mention_id)
    checks.require_registered(known, [cmd.member_id, cmd.mentioned_id])
    if cmd.member_id == cmd.mentioned_id:
        raise SelfMention(cmd.member_id)
    checks.require_active(known, [cmd.member_id, cmd.mentioned_id])
    _require_contribution(known, cmd.contribution_id)
    return [
        MentionRecorded(
            mention_id=cmd.mention_id,
            member_id=cmd.member_id,
            mentioned_id=cmd.mentioned_id,
            contribution_id=cmd.contribution_id,
            space=checks.space(cmd.space, required=False),
        )
    ]


def give_recognition(cmd: GiveRecognition, known: Known) -> list[Event]:
    if cmd.recognition_id in known.recognitions:
        raise RecognitionAlreadyGiven(cmd.recognition_id)
    checks.require_registered(known, [cmd.from_id, cmd.to_id])
    if cmd.from_id == cmd.to_id:
        raise SelfRecognition(cmd.from_id)
    if cmd.kind not in RECOGNITION_KINDS:
        raise UnknownRecognitionKind(cmd.kind, RECOGNITION_KINDS)
    checks.require_active(known, [cmd.from_id, cmd.to_id])
    _require_contribution(known, cmd.contribution_id)
    return [
        RecognitionGiven(
            recognition_id=cmd.recognition_id,
            from_id=cmd.from_id,
            to_id=cmd.to_id,
            kind=cmd.kind,
            reason=checks.limit("reason", cmd.reason, limits.MAX_NOTE),
            contribution_id=cmd.contribution_id,
            space=checks.space(cmd.space, required=False),
        )
    ]


def withdraw_recognition(cmd: WithdrawRecognition, known: Known) -> list[Event]:
    """Like a retraction: `Known` must hold both members; merged ones may still withdraw."""
    recognition = known.recognitions.get(cmd.recognition_id)
    if recognition is None:
        raise UnknownRecognition(cmd.recognition_id)
    if recognition.withdrawn:
        raise RecognitionAlreadyWithdrawn(cmd.recognition_id)
    for member_id in (recognition.from_id, recognition.to_id):
        checks.require_not_forgotten(known, member_id)
    return [
        RecognitionWithdrawn(
            recognition_id=cmd.recognition_id,
            from_id=recognition.from_id,
            to_id=recognition.to_id,
            reason=checks.limit("reason", cmd.reason, limits.MAX_NOTE),
        )
    ]


def _require_contribution(known: Known, contribution_id: UUID | None) -> None:
    if contribution_id is not None and contribution_id not in known.contributions:
        raise UnknownContribution(contribution_id)
