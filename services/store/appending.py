"""The call to `ledger_append`: its parameters, its transaction, and its coded errors.

`Ledger.append` (services/store/ledger.py) is the way in; this is what it runs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import msgspec
import psycopg

from domain.errors import (
    AppendConditionFailed,
    DuplicateEventIds,
    IdempotencyKeyReused,
    WrongExpectedVersion,
)
from services.store.feed import NOTIFY
from services.store.records import AppendCondition, NewEvent

RACED = {"events_event_id_key", "events_stream_version_key", "idempotency_keys_pkey"}
RACE_RETRIES = 3

_encoder = msgspec.json.Encoder()

_APPEND = (
    "SELECT out_position, out_event_id, out_replayed "
    "FROM ledger_append(%s::jsonb, %s::jsonb, %s::jsonb, %s, %s)"
)


def parameters(
    events: Sequence[NewEvent],
    expected_versions: Mapping[str, int] | None,
    condition: AppendCondition | None,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> tuple[Any, ...]:
    """`ledger_append`'s arguments: the whole batch encoded once, as one JSON array."""
    return (
        _encoder.encode(events).decode(),
        json.dumps(dict(expected_versions)) if expected_versions is not None else None,
        _encoder.encode(_condition_json(condition)).decode() if condition else None,
        idempotency_key,
        fingerprint,
    )


async def call_append(
    conn: psycopg.AsyncConnection[Any], params: tuple[Any, ...]
) -> list[tuple[Any, ...]]:
    """Within the caller's transaction: the append, and a NOTIFY delivered at its commit."""
    async with conn.transaction():
        cur = await conn.execute(_APPEND, params, prepare=True)
        rows = await cur.fetchall()
        if rows and not rows[0][2]:
            await conn.execute(NOTIFY, [str(rows[-1][0])], prepare=True)
        return rows


async def append_alone(
    conn: psycopg.AsyncConnection[Any],
    params: tuple[Any, ...],
    after_commit: Callable[[psycopg.AsyncConnection[Any], int], Awaitable[None]],
) -> list[tuple[Any, ...]]:
    """One autocommitted statement (the function is atomic by itself), then `after_commit`
    with the highest new position, still in autocommit."""
    manage = not conn.autocommit
    if manage:
        await conn.set_autocommit(True)
    try:
        cur = await conn.execute(_APPEND, params, prepare=True)
        rows = await cur.fetchall()
        if rows and not rows[0][2]:
            await after_commit(conn, rows[-1][0])
        return rows
    finally:
        if manage and not conn.closed:
            await conn.set_autocommit(False)


def raced(error: psycopg.errors.UniqueViolation) -> bool:
    """Whether a unique index refused an append that lost a race (worth running again)."""
    return error.diag.constraint_name in RACED


def _condition_json(condition: AppendCondition) -> dict[str, Any]:
    return {
        "after": condition.after,
        "items": [{"tags": q.tags, "types": q.types} for q in condition.fail_if_events_match],
    }


def translate(error: psycopg.Error, total: int) -> Exception:
    """Turn the append function's coded exceptions into the domain's named errors."""
    coded = (error.sqlstate or "").startswith("LE")
    detail = json.loads(error.diag.message_detail or "{}") if coded else {}
    match error.sqlstate:
        case "LE001":
            return WrongExpectedVersion(detail["stream"], detail["expected"], detail["actual"])
        case "LE002":
            return AppendConditionFailed(detail["after"], detail["positions"])
        case "LE003":
            return DuplicateEventIds([UUID(i) for i in detail["event_ids"]], detail["total"])
        case "LE004":
            return IdempotencyKeyReused(detail["key"])
        case "23505" if "event_id" in (error.diag.constraint_name or ""):
            return DuplicateEventIds([], total)
    return error
