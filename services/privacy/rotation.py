"""Re-wrapping every data key and secret under a new master key, in one transaction.

No event is read or written: events are sealed with the data keys, which do not change;
only their wrapping does. Either every key moves to the new master key or none does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from services.privacy.keyring import (
    HANDLE_SECRET,
    WEBHOOK_SECRET_CONTEXT,
    load_secret,
    member_key_context,
    secret_context,
)
from services.privacy.master import MasterKey, WrongMasterKey

BATCH = 5_000

# EXCLUSIVE blocks inserts (a key made meanwhile would stay wrapped by the old master
# key) and erasures, and leaves reads alone, so the ledger stays readable throughout.
# Webhooks too: a subscription made or given a new secret meanwhile would keep the old
# wrapping (the dispatcher's checkpoint updates wait the few moments a rotation takes).
_LOCK = "LOCK TABLE ledger_secrets, member_keys, webhooks IN EXCLUSIVE MODE"
_SECRETS = "SELECT name, wrapped, kek_id FROM ledger_secrets ORDER BY name"
_KEYS = """
    SELECT member_id, wrapped, kek_id
    FROM member_keys
    WHERE member_id > %(after)s
    ORDER BY member_id
    LIMIT %(limit)s
"""
_REWRAP_SECRETS = """
    UPDATE ledger_secrets s
    SET wrapped = new.wrapped, kek_id = %(kek_id)s
    FROM unnest(%(names)s::text[], %(wrapped)s::bytea[]) AS new(name, wrapped)
    WHERE s.name = new.name
"""
# A previous secret past its grace period signs nothing any more: dropped, not re-wrapped.
_WEBHOOK_SECRETS = """
    SELECT webhook_id, secret_wrapped, kek_id,
           CASE WHEN previous_valid_until > now() THEN previous_secret_wrapped END,
           previous_kek_id
    FROM webhooks
"""
_REWRAP_WEBHOOKS = """
    UPDATE webhooks w
    SET secret_wrapped = new.wrapped,
        kek_id = %(kek_id)s,
        previous_secret_wrapped = new.previous,
        previous_kek_id = CASE WHEN new.previous IS NULL THEN NULL ELSE %(kek_id)s END,
        previous_valid_until = CASE WHEN new.previous IS NULL THEN NULL
                                    ELSE w.previous_valid_until END
    FROM unnest(%(ids)s::uuid[], %(wrapped)s::bytea[], %(previous)s::bytea[])
        AS new(webhook_id, wrapped, previous)
    WHERE w.webhook_id = new.webhook_id
"""
_REWRAP_KEYS = """
    UPDATE member_keys k
    SET wrapped = new.wrapped, kek_id = %(kek_id)s
    FROM unnest(%(ids)s::uuid[], %(wrapped)s::bytea[]) AS new(member_id, wrapped)
    WHERE k.member_id = new.member_id
"""


@dataclass(frozen=True)
class Rotated:
    keys: int
    secrets: int
    webhook_secrets: int = 0
    """Current and previous (still in a rotation's grace period) signing secrets."""


async def rotate_master(
    conn: AsyncConnection[Any], old: MasterKey, new: MasterKey, *, batch: int = BATCH
) -> Rotated:
    """Unwrap with `old`, wrap with `new`; raises WrongMasterKey (nothing changed) if `old`
    is not the ledger's master key. Running processes must restart with `new` after."""
    if old.kek_id == new.kek_id:
        raise WrongMasterKey("the new master key is the current one: nothing to rotate")
    async with conn.transaction():
        await conn.execute(_LOCK)
        await load_secret(conn, old, HANDLE_SECRET)  # proves `old` before anything moves
        cur = await conn.execute(_SECRETS)
        names, wrapped = [], []
        for name, stored, kek_id in await cur.fetchall():
            _same(kek_id, old)
            names.append(name)
            secret = old.unwrap(bytes(stored), secret_context(name))
            wrapped.append(new.wrap(secret, secret_context(name)))
        await conn.execute(
            _REWRAP_SECRETS, {"names": names, "wrapped": wrapped, "kek_id": new.kek_id}
        )
        keys = 0
        after = "00000000-0000-0000-0000-000000000000"
        while rows := await (
            await conn.execute(_KEYS, {"after": after, "limit": batch})
        ).fetchall():
            ids, rewrapped = [], []
            for member_id, stored, kek_id in rows:
                _same(kek_id, old)
                context = member_key_context(member_id)
                ids.append(member_id)
                rewrapped.append(new.wrap(old.unwrap(bytes(stored), context), context))
            await conn.execute(
                _REWRAP_KEYS, {"ids": ids, "wrapped": rewrapped, "kek_id": new.kek_id}
            )
            keys += len(ids)
            after = ids[-1]
        webhooks = await _rewrap_webhook_secrets(conn, old, new)
    return Rotated(keys=keys, secrets=len(names), webhook_secrets=webhooks)


async def _rewrap_webhook_secrets(
    conn: AsyncConnection[Any], old: MasterKey, new: MasterKey
) -> int:
    """Subscriptions are few (one per integration), so all in one statement."""
    ids: list[Any] = []
    rewrapped: list[bytes] = []
    previous: list[bytes | None] = []
    rows = await (await conn.execute(_WEBHOOK_SECRETS)).fetchall()
    for webhook_id, stored, kek_id, stored_previous, previous_kek_id in rows:
        _same(kek_id, old)
        ids.append(webhook_id)
        rewrapped.append(_rewrap(bytes(stored), old, new))
        if stored_previous is None:
            previous.append(None)
        else:
            _same(previous_kek_id, old)
            previous.append(_rewrap(bytes(stored_previous), old, new))
    await conn.execute(
        _REWRAP_WEBHOOKS,
        {"ids": ids, "wrapped": rewrapped, "previous": previous, "kek_id": new.kek_id},
    )
    return len(ids) + sum(p is not None for p in previous)


def _rewrap(wrapped: bytes, old: MasterKey, new: MasterKey) -> bytes:
    return new.wrap(old.unwrap(wrapped, WEBHOOK_SECRET_CONTEXT), WEBHOOK_SECRET_CONTEXT)


def _same(kek_id: str, old: MasterKey) -> None:
    if kek_id != old.kek_id:
        raise WrongMasterKey(
            f"a stored key is wrapped by master key {kek_id}, not by the current one "
            f"{old.kek_id}: nothing was rotated"
        )
