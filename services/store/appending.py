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
from psycopg.types.json import Jsonb

from domain.errors import (
    AppendConditionFailed,
    DuplicateEventIds,
    IdempotencyKeyReused,
    WrongExpectedVersion,
)
from services.privacy.keyring import DraftKeys
from services.privacy.master import WRAPPED_KEY_BYTES
from services.store.feed import NOTIFY
from services.store.records import AppendCondition, NewEvent, SealedEvent

RACED = {
    "events_event_id_key",
    "events_stream_version_key",
    "idempotency_keys_pkey",
    "member_keys_pkey",  # another append made a key for one of our new members first
}
RACE_RETRIES = 3

_encoder = msgspec.json.Encoder()

_APPEND = (
    "SELECT out_position, out_event_id, out_replayed "
    "FROM ledger_append(%s::jsonb, %s::jsonb, %s::jsonb, %s, %s)"
)

# New members' keys go in with the append that first uses them: one statement, one commit
# (one WAL flush). They are inserted after ledger_append has run (the INSERT reads its
# answer), so the transaction has no xid when the append starts and the append is not
# pushed to run alone (0005). A replay stored nothing sealed under them: nothing inserted.
# A member forgotten meanwhile gets no key (its events stay sealed under one nobody
# keeps); one forgotten while we wait for the insert's lock is refused by the trigger
# (LK001). Another append that made one of these keys first fails ours on the primary
# key, and the store runs it again with that key. The first row alone carries the
# members whose keys went in. The ids go as one array literal and the wrapped keys as one
# `bytea`, cut by their fixed width in SQL: psycopg dumps a list element by element in
# Python (~2.8 us a member, binary arrays included; ~0.8 this way). The forgotten check
# is `ledger_member_forgotten` written out, so the planner makes it an anti-join (a hash
# of the few forgotten streams) rather than a probe per key (~2.5 us each; migration 0010
# did the same for the insert trigger).
_APPEND_MAKING_KEYS = f"""
    WITH appended AS (
        SELECT a.*
        FROM ledger_append(%s::jsonb, %s::jsonb, %s::jsonb, %s, %s)
            WITH ORDINALITY AS a(out_position, out_event_id, out_replayed, n)
    ), made AS (
        INSERT INTO member_keys (member_id, wrapped, kek_id)
        SELECT new.member_id,
               substring(%b::bytea FROM ((new.n - 1) * {WRAPPED_KEY_BYTES} + 1)::integer
                         FOR {WRAPPED_KEY_BYTES}),
               %s
        FROM unnest(%s::uuid[]) WITH ORDINALITY AS new(member_id, n)
        WHERE NOT EXISTS (SELECT FROM appended WHERE out_replayed)
          AND NOT EXISTS (
              SELECT FROM events e
              WHERE e.stream = 'member-' || new.member_id::text
                AND e.type = 'MemberForgotten'
          )
        ORDER BY new.n
        RETURNING member_id::text AS member
    )
    SELECT out_position, out_event_id, out_replayed,
           CASE WHEN n = 1 THEN (SELECT coalesce(array_agg(member), '{{}}') FROM made) END
    FROM appended
    ORDER BY n
"""


def parameters(
    events: Sequence[NewEvent | SealedEvent],
    expected_versions: Mapping[str, int] | None,
    condition: AppendCondition | None,
    idempotency_key: str | None,
    fingerprint: str | None,
) -> tuple[Any, ...]:
    """`ledger_append`'s arguments: the whole batch encoded once, as one JSON array, sent
    as the encoder's bytes (a batch is ~0.7 MB: no copy to `str` and back)."""
    return (
        Jsonb(_encoder.encode(events), dumps=_as_is),
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
    draft: DraftKeys | None = None,
) -> tuple[list[tuple[Any, ...]], list[str]]:
    """One autocommitted statement (the function is atomic by itself), with `draft`'s keys
    inserted in it, then `after_commit` with the highest new position, still in autocommit.

    Answers the append's rows and the members whose drafted keys it stored."""
    manage = not conn.autocommit
    if manage:
        await conn.set_autocommit(True)
    try:
        stored: list[str] = []
        if draft is None:
            cur = await conn.execute(_APPEND, params, prepare=True)
            rows = await cur.fetchall()
        else:
            keys = (b"".join(draft.wrapped), draft.kek_id, "{" + ",".join(draft.member_ids) + "}")
            assert len(keys[0]) == WRAPPED_KEY_BYTES * len(draft.member_ids), "a key's width"
            cur = await conn.execute(_APPEND_MAKING_KEYS, (*params, *keys), prepare=True)
            answer = await cur.fetchall()
            rows = [row[:3] for row in answer]
            stored = answer[0][3] if answer else []
        if rows and not rows[0][2]:
            await after_commit(conn, rows[-1][0])
        return rows, stored
    finally:
        if manage and not conn.closed:
            await conn.set_autocommit(False)


def _as_is(encoded: bytes) -> bytes:
    return encoded


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
