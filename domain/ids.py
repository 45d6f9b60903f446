"""Identifiers: time-ordered UUIDv7 for new things, UUIDv5 for things an importer re-derives.

v7 ids sort by creation time, so indexes on them stay compact and a member's id
says roughly when it was made. Python 3.11 has no `uuid.uuid7`, hence this module.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from uuid import UUID, uuid5

_RANDOM_BITS = 74  # rand_a (12) + rand_b (62) of RFC 9562's layout
_ROOT_NAMESPACE = uuid5(UUID(int=0), "community-ledger")

_lock = threading.Lock()
_last = 0  # the previous (timestamp << 74 | random) value handed out by this process


def new_id() -> UUID:
    """A UUIDv7; ids made by one process are strictly increasing, even within a millisecond."""
    global _last
    now_ms = time.time_ns() // 1_000_000
    candidate = (now_ms & ((1 << 48) - 1)) << _RANDOM_BITS | int.from_bytes(
        os.urandom(10), "big"
    ) >> (80 - _RANDOM_BITS)
    with _lock:
        # A clock that stands still or steps back must not reorder ids (RFC 9562 §6.2);
        # a random step, not +1, keeps the next id unguessable from this one.
        if candidate <= _last:
            candidate = _last + 1 + int.from_bytes(os.urandom(4), "big")
        _last = candidate
    timestamp = candidate >> _RANDOM_BITS
    rand_a = (candidate >> 62) & 0xFFF
    rand_b = candidate & ((1 << 62) - 1)
    return UUID(int=timestamp << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b)


def id_time(value: UUID) -> datetime:
    """When a UUIDv7 was made (UTC, millisecond precision)."""
    if value.version != 7:
        raise ValueError(f"{value} is a version {value.version} UUID, not a UUIDv7")
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


def deterministic_id(namespace: str, *parts: str) -> UUID:
    """The same id every time for the same parts, so re-running an importer never duplicates.

    Parts are JSON-encoded rather than joined, so ("a:b", "c") and ("a", "b:c") differ.
    """
    return uuid5(_ROOT_NAMESPACE, json.dumps([namespace, *parts], ensure_ascii=False))
