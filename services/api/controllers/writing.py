"""The one way a controller writes: items in, one handler call, the answer out.

Every write takes an `Idempotency-Key` header: a retry with the same key and body gets
the first answer and writes nothing; the same key with another body is a 422.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

from litestar import Request
from litestar.params import Parameter

from services.api import schemas as s
from services.api.auth import request_key
from services.api.numbers import whole_number
from services.handler import CommandHandler
from services.intake import id_maker, submissions
from services.items import Item

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


async def write(
    request: Request[Any, Any, Any],
    handler: CommandHandler,
    items: Sequence[Item],
    idempotency_key: str | None,
    expected_versions: dict[str, int] | None = None,
) -> s.BatchWritten:
    """Record `items` atomically; per item, the id of what it created or changed."""
    made, ids = submissions(items, id_maker(idempotency_key))
    appended = await handler.execute(
        made,
        idempotency_key=idempotency_key,
        fingerprint=await _fingerprint(request) if idempotency_key else None,
        metadata=_metadata(request),
        expected_versions=expected_versions,
    )
    return s.BatchWritten(
        ids=list[UUID | None](ids),
        event_ids=list(appended.event_ids),
        positions=list(appended.positions),
        replayed=appended.replayed,
    )


async def write_one(
    request: Request[Any, Any, Any],
    handler: CommandHandler,
    item: Item,
    idempotency_key: str | None,
    expected_versions: dict[str, int] | None = None,
) -> s.Written:
    """`write` of a single item, answered with the id of what it created or changed."""
    written = await write(request, handler, [item], idempotency_key, expected_versions)
    return s.Written(
        id=written.ids[0],
        event_ids=written.event_ids,
        positions=written.positions,
        replayed=written.replayed,
    )


def version_from_etag(value: str) -> int:
    """`"3"`, `W/"3"` or `3`: the member version an ETag carried."""
    return whole_number(value.strip().removeprefix("W/").strip('"'), "If-Match")


async def _fingerprint(request: Request[Any, Any, Any]) -> str:
    body = await request.body()
    return hashlib.sha256(
        b"%s %s\n%s" % (request.method.encode(), request.url.path.encode(), body)
    ).hexdigest()


def _metadata(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Which key asked, by id: never the key's name, which may be a person's, and kept
    forever in the ledger."""
    return {"source": "api", "api_key_id": str(request_key(request).key_id)}
