"""The one way a controller writes: items in, one handler call, the answer out.

Every write takes an `Idempotency-Key` header: a retry with the same key and body gets
the first answer and writes nothing; the same key with another body is a 422. Keys are
scoped by API key: two tools that happen to pick the same key never see each other's
answers (the ledger stores `api:<key id>:<key>`; answers show only the caller's key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Annotated, Any
from uuid import UUID

from litestar import Request
from litestar.params import Parameter

from domain.errors import IdempotencyKeyReused
from services.api import schemas as s
from services.api.auth import request_key
from services.api.numbers import whole_number
from services.handler import CommandHandler
from services.intake import id_maker, submissions
from services.items import Item
from services.store.idempotency import API_NAMESPACE

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
    scoped = scoped_key(request, idempotency_key)
    made, ids = submissions(items, id_maker(scoped))
    try:
        appended = await handler.execute(
            made,
            idempotency_key=scoped,
            fingerprint=await _fingerprint(request) if scoped else None,
            metadata=_metadata(request),
            expected_versions=expected_versions,
        )
    except IdempotencyKeyReused:
        assert idempotency_key is not None
        raise IdempotencyKeyReused(idempotency_key) from None
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


def scoped_key(request: Request[Any, Any, Any], idempotency_key: str | None) -> str | None:
    """The key as the ledger stores it: in the namespace of the API key that sent it.

    The ids a write creates derive from it too, so two tools' first writes under the same
    key create two members, not one that the second tool then fails to register.
    """
    if idempotency_key is None:
        return None
    key = request.scope.get("state", {}).get("api_key")
    owner = key.key_id if key is not None else "anonymous"
    return f"{API_NAMESPACE}{owner}:{idempotency_key}"


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
