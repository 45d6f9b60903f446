"""Which fields of each event are personal data, and whose key seals them.

The store seals these fields in every stored event (services/privacy/sealing.py) and
erasure destroys the key, so this table decides what "forgotten" means. A member's own
data (name, handles, bio, links) is under their key; what a member writes (a title, a
note, a reason) under the writer's key. Ids, types, kinds, spaces, times and the links
between members stay clear, so counts and the graph survive an erasure.
tests/domain/test_personal.py walks every event type: a new field needs a decision here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from domain.events import EVENT_TYPES


@dataclass(frozen=True)
class Personal:
    """`sealed` fields go under the key of the member named by the `owner` field."""

    owner: str
    sealed: tuple[str, ...]
    clear: tuple[str, ...]


PERSONAL: dict[str, Personal] = {
    "MemberRegistered": Personal(
        owner="member_id", sealed=("display_name", "handles"), clear=("member_id", "joined_at")
    ),
    "MemberProfileUpdated": Personal(
        owner="member_id", sealed=("display_name", "bio", "links"), clear=("member_id",)
    ),
    "HandleLinked": Personal(owner="member_id", sealed=("handle",), clear=("member_id",)),
    "HandleUnlinked": Personal(owner="member_id", sealed=("handle",), clear=("member_id",)),
    "MembersMerged": Personal(
        owner="survivor_id", sealed=(), clear=("survivor_id", "duplicate_id")
    ),
    # Sealed under the forgotten member's key, destroyed in the same transaction: a reason
    # may name the person, so it is never readable.
    "MemberForgotten": Personal(owner="member_id", sealed=("reason",), clear=("member_id",)),
    "ContributionRecorded": Personal(
        owner="member_id",
        sealed=("title", "body", "url", "attributes"),
        clear=("contribution_id", "member_id", "kind", "space", "reply_to"),
    ),
    "ContributionRetracted": Personal(
        owner="member_id", sealed=("reason",), clear=("contribution_id", "member_id")
    ),
    "IntroductionMade": Personal(
        owner="introducer_id",
        sealed=("note",),
        clear=("introduction_id", "introducer_id", "introduced_ids", "space"),
    ),
    "MentionRecorded": Personal(
        owner="member_id",
        sealed=(),
        clear=("mention_id", "member_id", "mentioned_id", "contribution_id", "space"),
    ),
    "RecognitionGiven": Personal(
        owner="from_id",
        sealed=("reason",),
        clear=("recognition_id", "from_id", "to_id", "kind", "contribution_id", "space"),
    ),
    "RecognitionWithdrawn": Personal(
        owner="from_id", sealed=("reason",), clear=("recognition_id", "from_id", "to_id")
    ),
}


def _blank_of(type_name: str, field: str) -> Any:
    """What a folded event holds where an erased field was: its default, else empty."""
    found = {f.name: f for f in msgspec.structs.fields(EVENT_TYPES[type_name])}[field]
    if found.default is not msgspec.NODEFAULT:
        return found.default
    if found.default_factory is not msgspec.NODEFAULT:
        return found.default_factory()
    return [] if str(found.type).startswith("tuple") else ""


BLANKS: dict[str, dict[str, Any]] = {
    name: {field: _blank_of(name, field) for field in personal.sealed}
    for name, personal in PERSONAL.items()
}
"""Per event type, the values a fold sees for the fields of an erased member."""


def sealed_fields(type_name: str) -> tuple[str, ...]:
    personal = PERSONAL.get(type_name)
    return personal.sealed if personal else ()


def owner_field(type_name: str) -> str:
    return PERSONAL[type_name].owner
