"""From request shapes (API bodies, batch items, import lines) to domain commands.

The API's endpoints, `POST /v1/batch` and the importers share these shapes, so one
function turns them into commands; handles are resolved by the handler's Resolver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from domain import commands as c
from domain.ids import deterministic_id, new_id
from services.api import schemas as s
from services.handler import Plan, Resolver, Submission

IdMaker = Callable[[int], UUID]

Item = (
    s.MemberCreate
    | s.ContributionCreate
    | s.IntroductionCreate
    | s.MentionCreate
    | s.RecognitionCreate
    | s.RetractContributionItem
    | s.WithdrawRecognitionItem
    | s.UpdateMemberItem
    | s.MergeMembersItem
    | s.ForgetMemberItem
)


def id_maker(idempotency_key: str | None) -> IdMaker:
    """Ids for what a request creates: stable under an Idempotency-Key, so a retry answers alike."""
    if idempotency_key is None:
        return lambda _: new_id()
    return lambda index: deterministic_id("idempotency-key", idempotency_key, str(index))


def handles_named(items: Sequence[Item]) -> list[str]:
    """Every handle the items reference, so the handler can load their owners up front."""
    refs: list[str] = []
    for item in items:
        match item:
            case s.ContributionCreate(member=member):
                refs.append(member)
            case s.IntroductionCreate(introducer=introducer, introduced=introduced):
                refs += [introducer, *introduced]
            case s.MentionCreate(member=member, mentioned=mentioned):
                refs += [member, mentioned]
            case s.RecognitionCreate(from_=giver, to=receiver):
                refs += [giver, receiver]
            case s.UpdateMemberItem(member=member) | s.ForgetMemberItem(member=member):
                refs.append(member)
            case s.MergeMembersItem(survivor=survivor, duplicate=duplicate):
                refs += [survivor, duplicate]
    return [ref for ref in refs if not _is_uuid(ref)]


def plan_items(items: Sequence[Item], make_id: IdMaker) -> tuple[Plan, list[UUID]]:
    """A plan for the handler, and the id each item creates or changes, in order."""
    ids = [
        getattr(item, "id", None) or _subject_id(item) or make_id(i) for i, item in enumerate(items)
    ]

    def plan(resolver: Resolver) -> list[Submission]:
        return [
            submission
            for item, subject in zip(items, ids, strict=True)
            for submission in _submissions(item, subject, resolver)
        ]

    return plan, ids


def _subject_id(item: Item) -> UUID | None:
    match item:
        case (
            s.UpdateMemberItem(member=ref)
            | s.ForgetMemberItem(member=ref)
            | s.MergeMembersItem(survivor=ref)
        ) if _is_uuid(ref):
            return UUID(ref)
        case s.RetractContributionItem(contribution_id=cid):
            return cid
        case s.WithdrawRecognitionItem(recognition_id=rid):
            return rid
    return None


def _submissions(item: Item, subject: UUID, resolver: Resolver) -> list[Submission]:
    if isinstance(item, s.UpdateMemberItem | s.MergeMembersItem | s.ForgetMemberItem):
        commands = _member_commands(item, resolver)
        return [Submission(command=command, occurred_at=item.occurred_at) for command in commands]

    def member(ref: str, display_name: str | None = None) -> UUID:
        register = getattr(item, "register_unknown", False)
        return resolver.member(ref, register_unknown=register, display_name=display_name)

    when = getattr(item, "occurred_at", None)
    command: c.Command
    match item:
        case s.MemberCreate():
            command = c.RegisterMember(
                member_id=subject,
                display_name=item.display_name,
                handles=tuple(item.handles),
                joined_at=item.joined_at,
            )
            resolver.plan(command)
            when = when or item.joined_at  # a batch item may carry its own occurred_at
        case s.ContributionCreate():
            command = c.RecordContribution(
                contribution_id=subject,
                member_id=member(item.member, item.display_name),
                kind=item.kind,
                space=item.space,
                title=item.title,
                body=item.body,
                url=item.url,
                attributes=item.attributes,
                reply_to=item.reply_to,
            )
        case s.IntroductionCreate():
            command = c.MakeIntroduction(
                introduction_id=subject,
                introducer_id=member(item.introducer),
                introduced_ids=tuple(member(ref) for ref in item.introduced),
                note=item.note,
                space=item.space,
            )
        case s.MentionCreate():
            command = c.RecordMention(
                mention_id=subject,
                member_id=member(item.member),
                mentioned_id=member(item.mentioned),
                contribution_id=item.contribution_id,
                space=item.space,
            )
        case s.RecognitionCreate():
            command = c.GiveRecognition(
                recognition_id=subject,
                from_id=member(item.from_),
                to_id=member(item.to),
                kind=item.kind,
                reason=item.reason,
                contribution_id=item.contribution_id,
                space=item.space,
            )
        case s.RetractContributionItem():
            command = c.RetractContribution(contribution_id=subject, reason=item.reason)
        case s.WithdrawRecognitionItem():
            command = c.WithdrawRecognition(recognition_id=subject, reason=item.reason)
        case _:
            raise TypeError(f"no command for {type(item).__name__}")
    return [Submission(command=command, occurred_at=when)]


def _member_commands(
    item: s.UpdateMemberItem | s.MergeMembersItem | s.ForgetMemberItem, resolver: Resolver
) -> list[c.Command]:
    if isinstance(item, s.MergeMembersItem):
        return [
            c.MergeMembers(
                survivor_id=resolver.member(item.survivor),
                duplicate_id=resolver.member(item.duplicate),
            )
        ]
    member_id = resolver.member(item.member)
    if isinstance(item, s.ForgetMemberItem):
        return [c.ForgetMember(member_id=member_id, reason=item.reason)]
    return member_patch_commands(member_id, item)


def member_patch_commands(member_id: UUID, patch: s.MemberPatch) -> list[c.Command]:
    """A profile change and handle links/unlinks, as `PATCH /v1/members/{id}` describes them."""
    commands: list[c.Command] = []
    if patch.display_name is not None or patch.bio is not None or patch.links is not None:
        links = tuple(patch.links) if patch.links is not None else None
        commands.append(
            c.UpdateProfile(
                member_id=member_id, display_name=patch.display_name, bio=patch.bio, links=links
            )
        )
    commands += [c.LinkHandle(member_id=member_id, handle=h) for h in patch.add_handles]
    commands += [c.UnlinkHandle(member_id=member_id, handle=h) for h in patch.remove_handles]
    if not commands:
        commands.append(c.UpdateProfile(member_id=member_id))  # the rules say what is missing
    return commands


def _is_uuid(ref: str) -> bool:
    try:
        UUID(ref)
    except ValueError:
        return False
    return True
