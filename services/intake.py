"""From the write vocabulary (HTTP bodies, batch items, import lines) to commands.

The one translation of an item: the API's endpoints, `POST /v1/batch` and the
importers all come through `submissions`. A member named by a handle gets a stand-in
id and a `Reference`; the handler resolves it against the state it loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from domain import commands as c
from domain.ids import deterministic_id, new_id
from services import items as s
from services.handler import Plan, Reference, Submission, resolve
from services.items import Item

__all__ = ["IdMaker", "Item", "handles_named", "id_maker", "plan_items", "submissions"]

IdMaker = Callable[[int], UUID]


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


def submissions(items: Sequence[Item], make_id: IdMaker) -> tuple[list[Submission], list[UUID]]:
    """The items as commands with references, and the id each creates or changes, in order."""
    ids = [
        getattr(item, "id", None) or _subject_id(item) or make_id(i) for i, item in enumerate(items)
    ]
    made = [sub for item, subject in zip(items, ids, strict=True) for sub in _submit(item, subject)]
    return made, ids


def plan_items(items: Sequence[Item], make_id: IdMaker) -> tuple[Plan, list[UUID]]:
    """`submissions` as a plan, for callers that resolve names of their own first (importers)."""
    made, ids = submissions(items, make_id)
    return (lambda resolver: resolve(made, resolver)), ids


class _Members:
    """Member references of one item: ids as they are, handles as stand-ins to resolve."""

    def __init__(self, register_unknown: bool = False) -> None:
        self.register_unknown = register_unknown
        self.references: dict[UUID, Reference] = {}

    def __call__(self, ref: str, display_name: str | None = None) -> UUID:
        if _is_uuid(ref):
            return UUID(ref)
        standin = new_id()
        self.references[standin] = Reference(
            handle=ref, register_unknown=self.register_unknown, display_name=display_name
        )
        return standin


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


def _submit(item: Item, subject: UUID) -> list[Submission]:
    member = _Members(getattr(item, "register_unknown", False))
    when = getattr(item, "occurred_at", None)
    commands: list[c.Command]
    match item:
        case s.MemberCreate():
            commands = [
                c.RegisterMember(
                    member_id=subject,
                    display_name=item.display_name,
                    handles=tuple(item.handles),
                    joined_at=item.joined_at,
                )
            ]
            when = when or item.joined_at  # a batch item may carry its own occurred_at
        case s.ContributionCreate():
            commands = [
                c.RecordContribution(
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
            ]
        case s.IntroductionCreate():
            commands = [
                c.MakeIntroduction(
                    introduction_id=subject,
                    introducer_id=member(item.introducer),
                    introduced_ids=tuple(member(ref) for ref in item.introduced),
                    note=item.note,
                    space=item.space,
                )
            ]
        case s.MentionCreate():
            commands = [
                c.RecordMention(
                    mention_id=subject,
                    member_id=member(item.member),
                    mentioned_id=member(item.mentioned),
                    contribution_id=item.contribution_id,
                    space=item.space,
                )
            ]
        case s.RecognitionCreate():
            commands = [
                c.GiveRecognition(
                    recognition_id=subject,
                    from_id=member(item.from_),
                    to_id=member(item.to),
                    kind=item.kind,
                    reason=item.reason,
                    contribution_id=item.contribution_id,
                    space=item.space,
                )
            ]
        case s.RetractContributionItem():
            commands = [c.RetractContribution(contribution_id=subject, reason=item.reason)]
        case s.WithdrawRecognitionItem():
            commands = [c.WithdrawRecognition(recognition_id=subject, reason=item.reason)]
        case s.MergeMembersItem():
            survivor = member(item.survivor)
            commands = [c.MergeMembers(survivor_id=survivor, duplicate_id=member(item.duplicate))]
        case s.ForgetMemberItem():
            commands = [c.ForgetMember(member_id=member(item.member), reason=item.reason)]
        case s.UpdateMemberItem():
            commands = member_patch_commands(member(item.member), item)
        case _:
            raise TypeError(f"no command for {type(item).__name__}")
    return [
        Submission(command=command, occurred_at=when, references=member.references)
        for command in commands
    ]


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
