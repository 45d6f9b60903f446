"""The community's activity: contributions, introductions, mentions, recognitions, batches.

Each write appends events through the domain rules and answers 201 with their positions.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, post

from services import items
from services.api import schemas as s
from services.api.auth import SECURITY, ensure_scope, request_key, require
from services.api.controllers.writing import IdempotencyKey, write, write_one
from services.handler import CommandHandler


class ActivityController(Controller):
    path = "/v1"
    guards = [require("write")]
    security = SECURITY
    tags = ["writes"]

    @post("/contributions", operation_id="RecordContribution", summary="Record a contribution")
    async def record_contribution(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        data: items.ContributionCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Something a member did for the community: an answer, an article, a recap, mentoring…"""
        return await write_one(request, handler, data, idempotency_key)

    @post(
        "/contributions/{contribution_id:uuid}/retraction",
        operation_id="RetractContribution",
        summary="Retract a contribution",
    )
    async def retract_contribution(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        contribution_id: UUID,
        data: items.Retraction,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Withdraws it from every count; the ledger keeps both events."""
        item = items.RetractContributionItem(contribution_id=contribution_id, reason=data.reason)
        return await write_one(request, handler, item, idempotency_key)

    @post("/introductions", operation_id="MakeIntroduction", summary="Record an introduction")
    async def make_introduction(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        data: items.IntroductionCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """A connector introduces two or more other members to each other."""
        return await write_one(request, handler, data, idempotency_key)

    @post("/mentions", operation_id="RecordMention", summary="Record a mention")
    async def record_mention(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        data: items.MentionCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """A member names another, usually in a contribution."""
        return await write_one(request, handler, data, idempotency_key)

    @post("/recognitions", operation_id="GiveRecognition", summary="Give a recognition")
    async def give_recognition(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        data: items.RecognitionCreate,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Kudos, thanks, a highlight or an award, from one member to another."""
        return await write_one(request, handler, data, idempotency_key)

    @post(
        "/recognitions/{recognition_id:uuid}/withdrawal",
        operation_id="WithdrawRecognition",
        summary="Withdraw a recognition",
    )
    async def withdraw_recognition(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        recognition_id: UUID,
        data: items.Withdrawal,
        idempotency_key: IdempotencyKey = None,
    ) -> s.Written:
        """Takes a recognition back; the ledger keeps both events."""
        item = items.WithdrawRecognitionItem(recognition_id=recognition_id, reason=data.reason)
        return await write_one(request, handler, item, idempotency_key)

    @post(
        "/batch",
        operation_id="AppendBatch",
        summary="Many commands in one atomic request",
        description=f"At most {s.MAX_BATCH_ITEMS:,} items and "
        f"{s.MAX_BATCH_BYTES // 2**20} MiB of body (413 past it): one batch holds the "
        "append lock while it is written, so it stays short. Large batches are decided "
        "off the event loop. A batch holding a `merge_members` or `forget_member` item needs "
        "an API key with scope `admin`, as those operations do on their own.",
        request_max_body_size=s.MAX_BATCH_BYTES,
    )
    async def batch(
        self,
        request: Request[Any, Any, Any],
        handler: CommandHandler,
        data: s.Batch,
        idempotency_key: IdempotencyKey = None,
    ) -> s.BatchWritten:
        """Refused whole, before anything is decided, when an item is beyond the key's scope."""
        if any(isinstance(item, items.IRREVERSIBLE) for item in data.items):
            ensure_scope(request_key(request), "admin", "a batch with a merge or an erasure")
        return await write(request, handler, data.items, idempotency_key)
