"""The write endpoints: each appends events through the domain rules and answers 201.

Every write takes an `Idempotency-Key` header: a retry with the same key and body gets
the first answer and writes nothing; the same key with another body is a 422.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, post
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from domain import commands as c
from domain.streams import member_stream
from services.api import schemas as s
from services.api.auth import require
from services.handler import CommandHandler, Resolver, Submission
from services.intake import Item, handles_named, id_maker, member_patch_commands, plan_items

IdempotencyKey = Annotated[
    str | None,
    Parameter(
        header="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Send the same key when retrying a write: it is applied at most once",
    ),
]
IfMatch = Annotated[
    str | None,
    Parameter(
        header="If-Match",
        required=False,
        max_length=40,
        description="The member version you last saw (its ETag); 409 if it moved on",
    ),
]

BATCH_MAX_BODY = 32 * 1024 * 1024


_strict_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


async def strict_body(request: Request[Any, Any, Any], body_type: type) -> None:
    """Refuse what Litestar's lenient decoding would coerce (a number where a date belongs)."""
    decoder = _strict_decoders.get(body_type)
    if decoder is None:
        decoder = _strict_decoders[body_type] = msgspec.json.Decoder(body_type)
    try:
        decoder.decode(await request.body())
    except msgspec.ValidationError as error:
        raise ValidationException(
            f"Validation failed for {request.method} {request.url.path}",
            extra=[{"message": str(error), "key": "data", "source": "body"}],
        ) from error


async def _fingerprint(request: Request[Any, Any, Any]) -> str:
    body = await request.body()
    return hashlib.sha256(
        b"%s %s\n%s" % (request.method.encode(), request.url.path.encode(), body)
    ).hexdigest()


async def _write(
    request: Request[Any, Any, Any],
    items: Sequence[Item],
    key: str | None,
) -> tuple[list[UUID], s.BatchWritten]:
    handler: CommandHandler = request.app.state.handler
    plan, ids = plan_items(items, id_maker(key))
    appended = await handler.execute(
        plan,
        handles=handles_named(items),
        idempotency_key=key,
        fingerprint=await _fingerprint(request) if key else None,
        metadata=_metadata(request),
    )
    return ids, s.BatchWritten(
        ids=list(ids),
        event_ids=list(appended.event_ids),
        positions=list(appended.positions),
        replayed=appended.replayed,
    )


def _single(ids: list[UUID], written: s.BatchWritten) -> s.Written:
    return s.Written(
        id=ids[0],
        event_ids=written.event_ids,
        positions=written.positions,
        replayed=written.replayed,
    )


def _metadata(request: Request[Any, Any, Any]) -> dict[str, Any]:
    key = request.scope.get("state", {}).get("api_key")
    return {"source": "api", "actor": getattr(key, "name", None)}


class WriteController(Controller):
    path = "/v1"
    guards = [require("write")]
    security = [{"bearerAuth": []}]
    tags = ["writes"]

    @post(
        "/members/{member_id:uuid}/merges",
        operation_id="MergeMembers",
        summary="Fold a duplicate member into this one",
    )
    async def merge_members(
        self,
        request: Request[Any, Any, Any],
        member_id: UUID,
        data: s.MemberMerge,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """The duplicate's history counts for this member from now on; its handles move here."""
        await strict_body(request, s.MemberMerge)

        def plan(resolver: Resolver) -> list[Submission]:
            duplicate = resolver.member(data.duplicate)
            return [
                Submission(command=c.MergeMembers(survivor_id=member_id, duplicate_id=duplicate))
            ]

        return await _run_plan(request, member_id, plan, [data.duplicate], idempotency_key)

    @post(
        "/members/{member_id:uuid}/erasure",
        operation_id="ForgetMember",
        summary="Erase a member's personal data",
    )
    async def forget_member(
        self,
        request: Request[Any, Any, Any],
        member_id: UUID,
        data: s.MemberErasure,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Profiles stop showing the member's name, handles, bio and links; counts stay."""
        await strict_body(request, s.MemberErasure)
        command = c.ForgetMember(member_id=member_id, reason=data.reason)
        return await _run(request, member_id, [command], idempotency_key)

    @post("/contributions", operation_id="RecordContribution", summary="Record a contribution")
    async def record_contribution(
        self,
        request: Request[Any, Any, Any],
        data: s.ContributionCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Something a member did for the community: an answer, an article, a recap, mentoring…"""
        await strict_body(request, s.ContributionCreate)
        return _single(*await _write(request, [data], idempotency_key))

    @post(
        "/contributions/{contribution_id:uuid}/retraction",
        operation_id="RetractContribution",
        summary="Retract a contribution",
    )
    async def retract_contribution(
        self,
        request: Request[Any, Any, Any],
        contribution_id: UUID,
        data: s.Retraction,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Withdraws it from every count; the ledger keeps both events."""
        await strict_body(request, s.Retraction)
        item = s.RetractContributionItem(contribution_id=contribution_id, reason=data.reason)
        return _single(*await _write(request, [item], idempotency_key))

    @post("/introductions", operation_id="MakeIntroduction", summary="Record an introduction")
    async def make_introduction(
        self,
        request: Request[Any, Any, Any],
        data: s.IntroductionCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """A connector introduces two or more other members to each other."""
        await strict_body(request, s.IntroductionCreate)
        return _single(*await _write(request, [data], idempotency_key))

    @post("/mentions", operation_id="RecordMention", summary="Record a mention")
    async def record_mention(
        self,
        request: Request[Any, Any, Any],
        data: s.MentionCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """A member names another, usually in a contribution."""
        await strict_body(request, s.MentionCreate)
        return _single(*await _write(request, [data], idempotency_key))

    @post("/recognitions", operation_id="GiveRecognition", summary="Give a recognition")
    async def give_recognition(
        self,
        request: Request[Any, Any, Any],
        data: s.RecognitionCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Kudos, thanks, a highlight or an award, from one member to another."""
        await strict_body(request, s.RecognitionCreate)
        return _single(*await _write(request, [data], idempotency_key))

    @post(
        "/recognitions/{recognition_id:uuid}/withdrawal",
        operation_id="WithdrawRecognition",
        summary="Withdraw a recognition",
    )
    async def withdraw_recognition(
        self,
        request: Request[Any, Any, Any],
        recognition_id: UUID,
        data: s.Withdrawal,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Takes a recognition back; the ledger keeps both events."""
        await strict_body(request, s.Withdrawal)
        item = s.WithdrawRecognitionItem(recognition_id=recognition_id, reason=data.reason)
        return _single(*await _write(request, [item], idempotency_key))

    @post(
        "/batch",
        operation_id="AppendBatch",
        summary="Many commands in one atomic request",
        request_max_body_size=BATCH_MAX_BODY,
    )
    async def batch(
        self, request: Request[Any, Any, Any], data: s.Batch, idempotency_key: IdempotencyKey = None
    ) -> s.BatchWritten:
        """All items are applied, in order, or none: each item sees the ones before it."""
        await strict_body(request, s.Batch)
        return (await _write(request, data.items, idempotency_key))[1]


async def register_member(
    request: Request[Any, Any, Any], data: s.MemberCreate, idempotency_key: str | None
) -> s.Written:
    return _single(*await _write(request, [data], idempotency_key))


async def update_member(
    request: Request[Any, Any, Any],
    member_id: UUID,
    data: s.MemberPatch,
    idempotency_key: str | None,
    if_match: str | None,
) -> s.Written:
    expected = data.expected_version
    if if_match is not None:
        expected = _version_from_etag(if_match)
    commands = member_patch_commands(member_id, data)
    versions = {member_stream(member_id): expected} if expected is not None else None
    return await _run(request, member_id, commands, idempotency_key, versions)


async def _run(
    request: Request[Any, Any, Any],
    subject: UUID,
    commands: list[c.Command],
    key: str | None,
    expected: dict[str, int] | None = None,
) -> s.Written:
    return await _run_plan(
        request, subject, lambda _: [Submission(command=cmd) for cmd in commands], [], key, expected
    )


async def _run_plan(
    request: Request[Any, Any, Any],
    subject: UUID,
    plan: Any,
    handles: list[str],
    key: str | None,
    expected: dict[str, int] | None = None,
) -> s.Written:
    handler: CommandHandler = request.app.state.handler
    appended = await handler.execute(
        plan,
        handles=[h for h in handles if ":" in h],
        idempotency_key=key,
        fingerprint=await _fingerprint(request) if key else None,
        metadata=_metadata(request),
        expected_versions=expected,
    )
    return s.Written(
        id=subject,
        event_ids=list(appended.event_ids),
        positions=list(appended.positions),
        replayed=appended.replayed,
    )


def _version_from_etag(value: str) -> int:
    stripped = value.strip().removeprefix("W/").strip('"')
    if not stripped.isdigit():
        raise ValidationException(f'If-Match must be a member version such as "3", got {value!r}')
    return int(stripped)
