"""The API's own bodies: answers, problems, and the bodies only HTTP has.

The shapes a write records are `services.items`, shared with batches and importers;
this module adds what exists only over HTTP on top of them.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec

from services.items import BatchItem, MemberRef, Request
from services.queries import members as q

MAX_BATCH_ITEMS = 1_000
"""The API's own limit, not a rule: importers chunk as they like (`--chunk-size`). One
request holds the append lock while its whole batch is written, so a batch stays short."""
MAX_BATCH_BYTES = 4 * 1024 * 1024
"""The bytes of a `POST /v1/batch` body (413 past it); other bodies take 1 MiB."""


class MemberMerge(Request, kw_only=True):
    duplicate: MemberRef
    """The member folded into this one; its history counts for this one from now on."""


class Batch(Request, kw_only=True):
    items: Annotated[
        list[BatchItem],
        msgspec.Meta(
            min_length=1,
            max_length=MAX_BATCH_ITEMS,
            description=f"At most {MAX_BATCH_ITEMS:,} items in a body of at most "
            f"{MAX_BATCH_BYTES // (1024 * 1024)} MiB (413 past it)",
        ),
    ]


class Written(msgspec.Struct, kw_only=True):
    """What a write appended: pass the last position as `min_position` to read your write."""

    id: UUID | None
    """The id of what the write created or changed (member, contribution, …)."""
    event_ids: list[UUID]
    positions: list[int]
    replayed: bool = False
    """True when an Idempotency-Key retry got the first answer and nothing was written."""


class BatchWritten(msgspec.Struct, kw_only=True):
    ids: list[UUID | None]
    """Per item, the id of what it created or changed."""
    event_ids: list[UUID]
    positions: list[int]
    replayed: bool = False


class MemberPage(msgspec.Struct, kw_only=True):
    members: list[q.MemberOut]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


class ConnectionPage(msgspec.Struct, kw_only=True):
    connections: list[q.ConnectionOut]
    next_cursor: str | None


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem detail."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    """Validation errors, one per bad field: where (`field`) and what is wrong (`message`)."""
