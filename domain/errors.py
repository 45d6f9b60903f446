"""What can go wrong, named after what broke; each error carries the facts involved.

Messages name ids, fields, platforms and numbers, never a handle, a name or a text: a
message reaches problem details and logs, which must not hold personal data. The values
stay on the error's attributes for code that needs them.

The API maps this hierarchy to problem+json in one place (`services/api/problems.py`):
`RuleViolation` -> 422, `NotFound` -> 404, `Conflict` -> 409.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from uuid import UUID

from domain.limits import MIN_INTRODUCED


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    title = "Ledger error"


class RuleViolation(LedgerError):
    """A command broke a rule of the domain; nothing was written."""

    title = "Rule violated"


class NotFound(LedgerError):
    title = "Not found"


class Conflict(LedgerError):
    """The ledger moved on since the caller looked; retrying with fresh state may succeed."""

    title = "Conflict"


class UnknownEventType(LedgerError):
    title = "Unknown event type"

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name
        super().__init__(f"unknown event type {type_name!r}")


class WrongExpectedVersion(Conflict):
    title = "Wrong expected version"

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(
            f"stream {stream!r} is at version {actual}, but the append expected version {expected}"
        )


class AppendConditionFailed(Conflict):
    title = "Append condition failed"

    def __init__(self, after: int, conflicting_positions: Sequence[int]) -> None:
        self.after = after
        self.conflicting_positions = tuple(conflicting_positions)
        shown = ", ".join(map(str, self.conflicting_positions[:10]))
        super().__init__(
            f"events matching the append condition were recorded after position {after} "
            f"(at positions {shown})"
        )


class DuplicateEventIds(Conflict):
    title = "Event ids already recorded"

    def __init__(self, event_ids: Sequence[UUID], total: int) -> None:
        self.event_ids = tuple(event_ids)
        which = (
            f"{len(self.event_ids)} of the {total} event ids in this append are already recorded "
            f"(first: {self.event_ids[0]})"
            if self.event_ids
            else f"the {total} events of this append repeat an event id"
        )
        super().__init__(f"{which}; a retry must resend the whole original batch")


class IdempotencyKeyReused(RuleViolation):
    title = "Idempotency key reused with a different request"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(
            f"idempotency key {key!r} was first used for a different request; "
            "use a new key for a new request"
        )


# --- Rules of the domain (raised by `domain.rules` and `domain.handles`) ---


def _ids(ids: Sequence[UUID]) -> str:
    return ", ".join(map(str, ids))


_PLATFORM = re.compile(r"[a-z][a-z0-9_.-]{0,31}")


def _platform(handle: str) -> str:
    """What of a handle a message may say: its platform (`twitter`), not who it is."""
    platform = handle.partition(":")[0].strip().lower()
    return platform if _PLATFORM.fullmatch(platform) else "unnamed"


class InvalidHandle(RuleViolation):
    title = "Invalid handle"

    def __init__(self, raw: str, reason: str) -> None:
        self.raw, self.reason = raw, reason
        super().__init__(f"invalid handle: {reason}")


class InvalidField(RuleViolation):
    title = "Invalid field"

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"{field}: {reason}")


class UnknownMembers(NotFound):
    title = "Unknown members"

    def __init__(self, member_ids: Sequence[UUID]) -> None:
        self.member_ids = tuple(member_ids)
        super().__init__(f"no member is registered with id {_ids(self.member_ids)}")


class UnknownHandles(NotFound):
    title = "Unknown handles"

    def __init__(self, handles: Sequence[str]) -> None:
        self.handles = tuple(handles)
        platforms = ", ".join(dict.fromkeys(map(_platform, self.handles)))
        which = (
            f"the {platforms} handle named"
            if len(self.handles) == 1
            else f"{len(self.handles)} of the handles named ({platforms})"
        )
        super().__init__(
            f'no member holds {which}; register the member first, or send "register_unknown": true'
        )


class MemberIsForgotten(RuleViolation):
    title = "Member is forgotten"

    def __init__(self, member_id: UUID) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id} was forgotten and takes no new events")


class MemberWasMerged(RuleViolation):
    title = "Member was merged"

    def __init__(self, member_id: UUID, survivor_id: UUID) -> None:
        self.member_id, self.survivor_id = member_id, survivor_id
        super().__init__(
            f"member {member_id} was merged into {survivor_id} and takes no new events; "
            f"use {survivor_id}"
        )


class MemberAlreadyRegistered(Conflict):
    title = "Member already registered"

    def __init__(self, member_id: UUID) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id} is already registered")


class HandleAlreadyClaimed(Conflict):
    title = "Handle already claimed"

    def __init__(self, handle: str, owner_id: UUID) -> None:
        self.handle, self.owner_id = handle, owner_id
        super().__init__(f"the {_platform(handle)} handle already belongs to member {owner_id}")


class HandleNotLinked(RuleViolation):
    title = "Handle not linked"

    def __init__(self, handle: str, member_id: UUID) -> None:
        self.handle, self.member_id = handle, member_id
        super().__init__(f"the {_platform(handle)} handle is not linked to member {member_id}")


class SelfMerge(RuleViolation):
    title = "Member merged into itself"

    def __init__(self, member_id: UUID) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id} cannot be merged into itself")


class UnknownContribution(NotFound):
    title = "Unknown contribution"

    def __init__(self, contribution_id: UUID) -> None:
        self.contribution_id = contribution_id
        super().__init__(f"no contribution is recorded with id {contribution_id}")


class ContributionAlreadyRecorded(Conflict):
    title = "Contribution already recorded"

    def __init__(self, contribution_id: UUID) -> None:
        self.contribution_id = contribution_id
        super().__init__(f"contribution {contribution_id} is already recorded")


class ContributionAlreadyRetracted(RuleViolation):
    title = "Contribution already retracted"

    def __init__(self, contribution_id: UUID) -> None:
        self.contribution_id = contribution_id
        super().__init__(f"contribution {contribution_id} is already retracted")


class SelfIntroduction(RuleViolation):
    title = "Member introduced to themselves"

    def __init__(self, member_id: UUID) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id} cannot be both the introducer and introduced")


class TooFewIntroduced(RuleViolation):
    title = "Too few members introduced"

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(
            f"an introduction connects at least {MIN_INTRODUCED} distinct other members, "
            f"this one names {count}"
        )


class IntroductionAlreadyMade(Conflict):
    title = "Introduction already made"

    def __init__(self, introduction_id: UUID) -> None:
        self.introduction_id = introduction_id
        super().__init__(f"introduction {introduction_id} is already recorded")


class SelfMention(RuleViolation):
    title = "Member mentioned themselves"

    def __init__(self, member_id: UUID) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id} cannot be recorded as mentioning themselves")


class MentionAlreadyRecorded(Conflict):
    title = "Mention already recorded"

    def __init__(self, mention_id: UUID) -> None:
        self.mention_id = mention_id
        super().__init__(f"mention {mention_id} is already recorded")


class SelfRecognition(RuleViolation):
    title = "Member recognised themselves"

    def __init__(self, member_id: UUID) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id} cannot recognise themselves")


class UnknownRecognitionKind(RuleViolation):
    title = "Unknown recognition kind"

    def __init__(self, kind: str, allowed: Sequence[str]) -> None:
        self.kind, self.allowed = kind, tuple(allowed)
        super().__init__(f"recognition kind {kind!r} is not one of: {', '.join(self.allowed)}")


class RecognitionAlreadyGiven(Conflict):
    title = "Recognition already given"

    def __init__(self, recognition_id: UUID) -> None:
        self.recognition_id = recognition_id
        super().__init__(f"recognition {recognition_id} is already recorded")


class UnknownRecognition(NotFound):
    title = "Unknown recognition"

    def __init__(self, recognition_id: UUID) -> None:
        self.recognition_id = recognition_id
        super().__init__(f"no recognition is recorded with id {recognition_id}")


class RecognitionAlreadyWithdrawn(RuleViolation):
    title = "Recognition already withdrawn"

    def __init__(self, recognition_id: UUID) -> None:
        self.recognition_id = recognition_id
        super().__init__(f"recognition {recognition_id} is already withdrawn")
