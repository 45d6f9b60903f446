"""The dispatcher's SQL: subscriptions to deliver, and each attempt recorded with its checkpoint.

Every write is one statement, so one transaction: the attempts go to the delivery log and
the subscription's state (checkpoint, failures, next attempt, disabled) moves with them,
or nothing happens. It is fenced twice, as the projections' checkpoints are: by the lease
token (a dispatcher that lost its subscription writes nothing) and by the state it started
from (a replay or a re-enable over HTTP in between makes the write touch no row, and the
dispatcher reloads the subscription).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection

LEASE_PREFIX = "webhook:"

# The previous secret only while its grace period lasts (by the database's clock, the one
# the rotation's answer was computed with).
_SUBSCRIPTION = """
    SELECT webhook_id, url, event_types, member_id, space, enabled, secret_wrapped, kek_id,
           position, attempts, next_attempt_at,
           CASE WHEN previous_valid_until > now() THEN previous_secret_wrapped END,
           CASE WHEN previous_valid_until > now() THEN previous_kek_id END,
           CASE WHEN previous_valid_until > now() THEN previous_valid_until END
    FROM webhooks
    WHERE webhook_id = %(webhook_id)s
"""

_ENABLED = "SELECT webhook_id FROM webhooks WHERE enabled ORDER BY webhook_id"

# FOR SHARE: a dispatcher taking the lease over waits for this write to commit, and this
# write, started after the takeover, finds the lease gone; either way one of them writes.
_RECORD = """
    WITH lease AS (
        SELECT 1
        FROM projection_leases
        WHERE name = %(lease)s
          AND owner = %(owner)s
          AND token = %(token)s
        FOR SHARE
    ),
    moved AS (
        UPDATE webhooks
        SET position = %(to)s,
            attempts = %(attempts)s,
            next_attempt_at = %(next_attempt_at)s,
            enabled = enabled AND %(disabled_reason)s::text IS NULL,
            disabled_reason = coalesce(%(disabled_reason)s, disabled_reason),
            updated_at = now()
        WHERE webhook_id = %(webhook_id)s
          AND position = %(from)s
          AND attempts = %(attempts_before)s
          AND enabled
          AND EXISTS (SELECT 1 FROM lease)
        RETURNING 1
    ),
    logged AS (
        INSERT INTO webhook_deliveries (
            webhook_id, position, event_id, attempt, status_code, duration_ms, error,
            next_attempt_at, attempted_at
        )
        SELECT %(webhook_id)s, d.position, d.event_id, d.attempt, d.status_code,
               d.duration_ms, d.error, d.next_attempt_at, d.attempted_at
        FROM unnest(
            %(positions)s::bigint[], %(event_ids)s::uuid[], %(attempt_numbers)s::int[],
            %(status_codes)s::int[], %(durations)s::float8[], %(errors)s::text[],
            %(next_attempts)s::timestamptz[], %(attempted_at)s::timestamptz[]
        ) AS d(position, event_id, attempt, status_code, duration_ms, error,
               next_attempt_at, attempted_at)
        WHERE EXISTS (SELECT 1 FROM lease)
          AND EXISTS (SELECT 1 FROM webhooks WHERE webhook_id = %(webhook_id)s)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM lease), (SELECT count(*) FROM moved)
"""


_FIELDS = (
    "webhook_id",
    "url",
    "event_types",
    "member_id",
    "space",
    "enabled",
    "secret_wrapped",
    "kek_id",
    "position",
    "attempts",
    "next_attempt_at",
    "previous_secret_wrapped",
    "previous_kek_id",
    "previous_valid_until",
)


class Subscription(msgspec.Struct, kw_only=True):
    webhook_id: UUID
    url: str
    event_types: list[str] | None
    member_id: UUID | None
    space: str | None
    enabled: bool
    secret_wrapped: bytes
    kek_id: str
    position: int
    attempts: int
    """Failed attempts at the event after `position`."""
    next_attempt_at: datetime | None
    previous_secret_wrapped: bytes | None = None
    """The secret a rotation superseded, while its grace period lasts."""
    previous_kek_id: str | None = None
    previous_valid_until: datetime | None = None


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the delivery log."""

    position: int
    event_id: UUID
    attempt: int
    status_code: int | None
    duration_ms: float
    error: str | None
    attempted_at: datetime
    next_attempt_at: datetime | None = None


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    owner: str
    token: int


class Recorded(msgspec.Struct, frozen=True, kw_only=True):
    leased: bool
    """False: another dispatcher holds the subscription now; nothing was written."""
    moved: bool
    """False: the subscription changed meanwhile (a replay, disabled or re-enabled, deleted)."""


def lease_name(webhook_id: UUID) -> str:
    return f"{LEASE_PREFIX}{webhook_id}"


async def enabled_subscriptions(conn: AsyncConnection[Any]) -> list[UUID]:
    cur = await conn.execute(_ENABLED)
    return [row[0] for row in await cur.fetchall()]


async def load_subscription(conn: AsyncConnection[Any], webhook_id: UUID) -> Subscription | None:
    cur = await conn.execute(_SUBSCRIPTION, {"webhook_id": webhook_id}, prepare=True)
    row = await cur.fetchone()
    if row is None:
        return None
    values = dict(zip(_FIELDS, row, strict=True))
    values["secret_wrapped"] = bytes(values["secret_wrapped"])
    if values["previous_secret_wrapped"] is not None:
        values["previous_secret_wrapped"] = bytes(values["previous_secret_wrapped"])
    return Subscription(**values)


async def record(
    conn: AsyncConnection[Any],
    lease: Lease,
    subscription: Subscription,
    attempts: list[Attempt],
    *,
    to: int,
    failures: int = 0,
    next_attempt_at: datetime | None = None,
    disabled_reason: str | None = None,
) -> Recorded:
    """Log `attempts` and move the subscription from its state in `subscription` to
    checkpoint `to` with `failures` at the next event; `disabled_reason` disables it."""
    cur = await conn.execute(
        _RECORD,
        {
            "lease": lease.name,
            "owner": lease.owner,
            "token": lease.token,
            "webhook_id": subscription.webhook_id,
            "from": subscription.position,
            "attempts_before": subscription.attempts,
            "to": to,
            "attempts": failures,
            "next_attempt_at": next_attempt_at,
            "disabled_reason": disabled_reason,
            "positions": [a.position for a in attempts],
            "event_ids": [a.event_id for a in attempts],
            "attempt_numbers": [a.attempt for a in attempts],
            "status_codes": [a.status_code for a in attempts],
            "durations": [a.duration_ms for a in attempts],
            "errors": [a.error for a in attempts],
            "next_attempts": [a.next_attempt_at for a in attempts],
            "attempted_at": [a.attempted_at for a in attempts],
        },
        prepare=True,
    )
    row = await cur.fetchone()
    assert row is not None
    recorded = Recorded(leased=bool(row[0]), moved=bool(row[1]))
    if recorded.moved:
        subscription.position, subscription.attempts = to, failures
        subscription.next_attempt_at = next_attempt_at
        subscription.enabled = subscription.enabled and disabled_reason is None
    return recorded
