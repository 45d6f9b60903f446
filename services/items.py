"""The write vocabulary: what a tool may ask the ledger to record.

HTTP bodies, `POST /v1/batch` items, import lines and exports share these shapes, so
they live apart from the API: changing an HTTP concern cannot silently change the
JSONL format users keep on disk. Bodies forbid unknown fields, so a typo is refused
instead of dropped. Members are referenced by id or by handle (`"twitter:@yannr"`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain import limits as lim

MemberRef = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=lim.MAX_HANDLE,
        description="A member id (UUID) or a handle `platform:handle`, e.g. `twitter:@yannr`",
        examples=["twitter:@yannr"],
    ),
]
HandleText = Annotated[str, msgspec.Meta(max_length=lim.MAX_HANDLE)]
Handles = Annotated[
    list[HandleText],
    msgspec.Meta(
        max_length=lim.MAX_HANDLES,
        description=f"At most {lim.MAX_HANDLES}; a member holds at most {lim.MAX_HANDLES} "
        "handles. Compared after NFKC; a name mixing scripts confusably is refused",
    ),
]
Moment = Annotated[
    datetime,
    msgspec.Meta(
        description="Not before 1970-01-01 and at most a day past the server's clock; "
        "a date without a zone is UTC"
    ),
]
DisplayName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=lim.MAX_DISPLAY_NAME,
        examples=["Yann Ropars"],
        description="Something visible, without control or bidirectional-override characters",
    ),
]
Note = Annotated[str, msgspec.Meta(max_length=lim.MAX_NOTE)]
"""A reason or a note."""
Url = Annotated[str, msgspec.Meta(max_length=lim.MAX_URL)]
Link = Annotated[
    str, msgspec.Meta(max_length=lim.MAX_URL, description="An http:// or https:// address")
]
Space = Annotated[
    str, msgspec.Meta(pattern=lim.OPTIONAL_SPACE_PATTERN, description="a space slug, or empty")
]
Attributes = Annotated[
    dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=lim.MAX_ATTRIBUTE_KEY)],
        Annotated[str, msgspec.Meta(max_length=lim.MAX_ATTRIBUTE_VALUE)],
    ],
    msgspec.Meta(max_length=lim.MAX_ATTRIBUTES, examples=[{"question": "Q3"}]),
]


class Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies."""


class MemberCreate(Request, kw_only=True):
    display_name: DisplayName
    handles: Handles = []
    joined_at: Moment | None = None
    id: UUID | None = None
    """Choose the member's id yourself (importers); a new UUIDv7 otherwise."""


class MemberPatch(Request, kw_only=True):
    display_name: DisplayName | None = None
    bio: Annotated[str, msgspec.Meta(max_length=lim.MAX_BIO)] | None = None
    links: Annotated[list[Link], msgspec.Meta(max_length=lim.MAX_LINKS)] | None = None
    add_handles: Handles = []
    remove_handles: Handles = []
    expected_version: Annotated[int, msgspec.Meta(ge=0, le=lim.MAX_POSITION)] | None = None
    """The member's version you last saw (or send it as `If-Match`); 409 if it moved on."""


class MemberErasure(Request, kw_only=True):
    reason: Note = ""


class Attribution(Request, kw_only=True):
    occurred_at: Moment | None = None
    """When it happened in the community (imports carry history); now if not given."""
    register_unknown: bool = False
    """Register a new member for any handle nobody holds yet, in the same transaction."""


class ContributionCreate(Attribution, kw_only=True):
    member: MemberRef
    kind: Annotated[str, msgspec.Meta(pattern=lim.KIND_PATTERN, examples=["chat_answer"])]
    space: Annotated[str, msgspec.Meta(pattern=lim.SPACE_PATTERN, examples=["kaizenblog"])]
    title: Annotated[str, msgspec.Meta(max_length=lim.MAX_TITLE)] = ""
    body: Annotated[str, msgspec.Meta(max_length=lim.MAX_BODY)] = ""
    url: Url = ""
    attributes: Attributes = {}
    reply_to: UUID | None = None
    display_name: Annotated[str, msgspec.Meta(max_length=lim.MAX_DISPLAY_NAME)] | None = None
    """The name to register an unknown member under (with `register_unknown`)."""
    id: UUID | None = None


class Retraction(Request, kw_only=True):
    reason: Note = ""


class IntroductionCreate(Attribution, kw_only=True):
    introducer: MemberRef
    introduced: Annotated[
        list[MemberRef], msgspec.Meta(min_length=lim.MIN_INTRODUCED, max_length=lim.MAX_INTRODUCED)
    ]
    note: Note = ""
    space: Space = ""
    id: UUID | None = None


class MentionCreate(Attribution, kw_only=True):
    member: MemberRef
    mentioned: MemberRef
    contribution_id: UUID | None = None
    space: Space = ""
    id: UUID | None = None


class RecognitionCreate(Attribution, kw_only=True):
    from_: MemberRef = msgspec.field(name="from")
    to: MemberRef
    kind: Annotated[
        str, msgspec.Meta(examples=["kudos"], description="kudos, thanks, highlight or award")
    ]
    reason: Note = ""
    contribution_id: UUID | None = None
    space: Space = ""
    id: UUID | None = None


class Withdrawal(Request, kw_only=True):
    reason: Note = ""


# Batch items: the same shapes, told apart by a `command` field.
class RegisterMemberItem(MemberCreate, tag_field="command", tag="register_member", kw_only=True):
    occurred_at: Moment | None = None
    """When the registration happened, if not `joined_at` (exports carry it for round trips)."""


class RecordContributionItem(
    ContributionCreate, tag_field="command", tag="record_contribution", kw_only=True
):
    pass


class RetractContributionItem(
    Retraction, tag_field="command", tag="retract_contribution", kw_only=True
):
    contribution_id: UUID
    occurred_at: Moment | None = None


class MakeIntroductionItem(
    IntroductionCreate, tag_field="command", tag="make_introduction", kw_only=True
):
    pass


class RecordMentionItem(MentionCreate, tag_field="command", tag="record_mention", kw_only=True):
    pass


class GiveRecognitionItem(
    RecognitionCreate, tag_field="command", tag="give_recognition", kw_only=True
):
    pass


class WithdrawRecognitionItem(
    Withdrawal, tag_field="command", tag="withdraw_recognition", kw_only=True
):
    recognition_id: UUID
    occurred_at: Moment | None = None


class UpdateMemberItem(MemberPatch, tag_field="command", tag="update_member", kw_only=True):
    member: MemberRef
    occurred_at: Moment | None = None


class MergeMembersItem(Request, tag_field="command", tag="merge_members", kw_only=True):
    survivor: MemberRef
    duplicate: MemberRef
    occurred_at: Moment | None = None


class ForgetMemberItem(MemberErasure, tag_field="command", tag="forget_member", kw_only=True):
    member: MemberRef
    occurred_at: Moment | None = None


BatchItem = (
    RegisterMemberItem
    | UpdateMemberItem
    | MergeMembersItem
    | ForgetMemberItem
    | RecordContributionItem
    | RetractContributionItem
    | MakeIntroductionItem
    | RecordMentionItem
    | GiveRecognitionItem
    | WithdrawRecognitionItem
)

IRREVERSIBLE = (MergeMembersItem, ForgetMemberItem)
"""Items no later event can undo: over HTTP they need an admin key, in a batch too."""


Item = (
    MemberCreate
    | ContributionCreate
    | IntroductionCreate
    | MentionCreate
    | RecognitionCreate
    | RetractContributionItem
    | WithdrawRecognitionItem
    | UpdateMemberItem
    | MergeMembersItem
    | ForgetMemberItem
)
"""Anything a write may record: an HTTP body or a batch item (importers make the latter)."""
