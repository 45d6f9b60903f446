"""Page cursors: opaque to callers, decoded by type, so a forged one is a 400, not a 500.

A cursor is base64url of a JSON array the endpoint wrote, `[sort value, id]`. Reading it
back through a typed msgspec decoder refuses anything the endpoint could not have
written (an object where a count belongs, a number where an id belongs, a count past a
bigint) before any of it reaches SQL.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec

from domain.limits import MAX_POSITION

Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_POSITION)]


class Cursor(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    """Base of cursors: written as a JSON array, read back only in the same shape."""


class ActivityCursor(Cursor, frozen=True):
    """Members by last activity; None for members never active (sorted as -infinity)."""

    last_active_at: Annotated[datetime, msgspec.Meta(tz=True)] | None
    member_id: UUID


class CountCursor(Cursor, frozen=True):
    """Members by a count, or connections by weight."""

    count: Count
    member_id: UUID


class IntroductionCursor(Cursor, frozen=True):
    """Introductions newest first: the position of the last one on the page."""

    position: Annotated[int, msgspec.Meta(ge=1, le=MAX_POSITION)]


class EvidenceCursor(Cursor, frozen=True):
    """A score component's events by position, then counterpart (or the pair introduced)."""

    position: Annotated[int, msgspec.Meta(ge=0, le=MAX_POSITION)]
    first: UUID
    second: UUID | None


C = TypeVar("C", bound=Cursor)

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


class InvalidCursor(ValueError):
    """Not a cursor this endpoint handed out; says so without echoing it."""

    def __init__(self) -> None:
        super().__init__(
            "not a cursor this endpoint handed out: pass next_cursor from the previous page"
        )


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).decode().rstrip("=")


def decode_cursor(text: str, kind: type[C]) -> C:
    """Raises InvalidCursor on anything `encode_cursor` could not have written for `kind`."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        decoded: C = decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError, RecursionError) as error:
        raise InvalidCursor() from error
    return decoded
