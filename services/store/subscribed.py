"""The events a webhook subscription wants: the feed after its checkpoint, filtered.

Read only up to a readable head the caller took first (`feed.readable_head`), so the
dispatcher never passes an event whose lower neighbours may still commit, and may move
the checkpoint over the non-matching events up to that head without delivering them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec
import psycopg

from domain.streams import member_tag, space_tag
from services.store.records import COLUMNS, FIELDS, RecordedEvent, fetch
from services.store.sealed import Sealer

_MATCHING = f"""
    SELECT {COLUMNS}
    FROM events
    WHERE position > %(after)s
      AND position <= %(head)s
      AND (%(types)s::text[] IS NULL OR type = ANY (%(types)s::text[]))
    ORDER BY position
    LIMIT %(limit)s
"""

# Driven by the rarer side, the tag's index (tag, position): a member's events are few
# among many, and walking the whole feed to find them would cost the feed's length.
_MATCHING_TAGGED = f"""
    SELECT {", ".join(f"e.{field}" for field in FIELDS)}
    FROM event_tags t
    JOIN events e ON e.position = t.position
    WHERE t.tag = %(tag)s
      AND t.position > %(after)s
      AND t.position <= %(head)s
      AND (%(types)s::text[] IS NULL OR e.type = ANY (%(types)s::text[]))
      AND (
          %(also)s::text IS NULL
          OR EXISTS (
              SELECT 1
              FROM event_tags a
              WHERE a.tag = %(also)s
                AND a.position = e.position
          )
      )
    ORDER BY t.position
    LIMIT %(limit)s
"""


class Matching(msgspec.Struct, frozen=True, kw_only=True):
    events: list[RecordedEvent]
    """Opened as every reader shows them (an erased member's fields null)."""
    scanned_to: int
    """Every matching event at or below it is in `events`: the checkpoint may move here
    once they are all delivered."""


async def read_subscribed(
    conn: psycopg.AsyncConnection[Any],
    sealer: Sealer,
    *,
    after: int,
    head: int,
    limit: int,
    types: Sequence[str] | None = None,
    member_id: UUID | None = None,
    space: str | None = None,
) -> Matching:
    """Up to `limit` events after `after`, at or below `head`, of `types` (None: all),
    tagged with the member and the space when they are given."""
    tags = [tag for tag in (_member(member_id), _space(space)) if tag is not None]
    params: dict[str, Any] = {
        "after": after,
        "head": head,
        "limit": limit,
        "types": list(types) if types else None,
    }
    if tags:
        params |= {"tag": sealer.tag(tags[0]), "also": sealer.tag(tags[1]) if tags[1:] else None}
        found = await fetch(conn, _MATCHING_TAGGED, params)
    else:
        found = await fetch(conn, _MATCHING, params)
    scanned_to = found[-1].position if len(found) == limit else max(head, after)
    return Matching(events=await sealer.open(conn, found), scanned_to=scanned_to)


def _member(member_id: UUID | None) -> str | None:
    return member_tag(member_id) if member_id is not None else None


def _space(space: str | None) -> str | None:
    return space_tag(space) if space else None
