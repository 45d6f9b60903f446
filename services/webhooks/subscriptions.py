"""Webhook subscriptions and their delivery log: the SQL the API runs on them.

The dispatcher (`services/webhooks/dispatcher.py`) reads the same rows and moves a
subscription's checkpoint only with a compare-and-set on `position`; so can replay here,
and a dispatcher whose update then touches no row knows to reload.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import msgspec
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from services.privacy.keyring import HANDLE_SECRET
from services.privacy.master import WrongMasterKey
from services.queries.cursors import Count, Cursor, decode_cursor, encode_cursor
from services.store.feed import readable_head


class WebhookOut(msgspec.Struct, kw_only=True):
    """A subscription as the API shows it: never its secret."""

    id: UUID
    url: str
    event_types: list[str] | None
    """null: every type."""
    member_id: UUID | None
    """Only events that name this member (null: any)."""
    space: str | None
    """Only events in this space (null: any)."""
    description: str
    enabled: bool
    disabled_reason: str | None
    """Why the dispatcher gave up, after its last retry; null while enabled."""
    position: int
    """The checkpoint: every matching event at or below it was answered with a 2xx."""
    attempts: int
    """Failed attempts at the next event."""
    next_attempt_at: datetime | None
    previous_secret_valid_until: datetime | None
    """While a rotation's grace period lasts, deliveries are signed with the previous
    secret too, until this moment; null when only the current secret signs."""
    created_at: datetime
    updated_at: datetime


class DeliveryOut(msgspec.Struct, kw_only=True):
    """One attempt to deliver one event."""

    delivery_id: int
    position: int
    event_id: UUID
    attempt: int
    """1 for the first try of this event, 2 for the first retry, …"""
    status_code: int | None
    """null when no answer came (refused, timed out, unsafe target)."""
    duration_ms: float
    error: str | None
    next_attempt_at: datetime | None
    """When the next retry is due, after a failure; null after a success."""
    attempted_at: datetime


class WebhookCursor(Cursor, frozen=True):
    """Subscriptions in creation order."""

    created_at: Annotated[datetime, msgspec.Meta(tz=True)]
    webhook_id: UUID


class DeliveryCursor(Cursor, frozen=True):
    """Attempts newest first."""

    delivery_id: Count


_COLUMNS = """
    webhook_id AS id, url, event_types, member_id, space, description, enabled,
    disabled_reason, position, attempts, next_attempt_at,
    CASE WHEN previous_valid_until > now() THEN previous_valid_until END
        AS previous_secret_valid_until,
    created_at, updated_at
"""
_INSERT = f"""
    INSERT INTO webhooks (
        webhook_id, url, event_types, member_id, space, description, enabled,
        secret_wrapped, kek_id, position
    )
    VALUES (
        %(id)s, %(url)s, %(event_types)s, %(member_id)s, %(space)s, %(description)s,
        %(enabled)s, %(wrapped)s, %(kek_id)s, %(position)s
    )
    RETURNING {_COLUMNS}
"""
# Read after the insert or update that holds the webhooks row lock: a master-key rotation
# (EXCLUSIVE on webhooks) either committed before, and this sees its new kek_id, or waits.
_LEDGER_KEK = "SELECT kek_id FROM ledger_secrets WHERE name = %(name)s"
_GET = f"SELECT {_COLUMNS} FROM webhooks WHERE webhook_id = %(id)s"
_LIST = f"""
    SELECT {_COLUMNS}
    FROM webhooks
    WHERE (created_at, webhook_id) > (%(created_at)s, %(id)s)
    ORDER BY created_at, webhook_id
    LIMIT %(limit)s
"""
_DELETE = "DELETE FROM webhooks WHERE webhook_id = %(id)s"
# On the right of SET, `secret_wrapped` and `kek_id` are the values before this update:
# the secret superseded becomes the previous one (replacing any earlier previous one).
_ROTATE = """
    UPDATE webhooks
    SET previous_secret_wrapped = CASE WHEN %(grace)s > interval '0' THEN secret_wrapped END,
        previous_kek_id = CASE WHEN %(grace)s > interval '0' THEN kek_id END,
        previous_valid_until = CASE WHEN %(grace)s > interval '0' THEN now() + %(grace)s END,
        secret_wrapped = %(wrapped)s,
        kek_id = %(kek_id)s,
        updated_at = now()
    WHERE webhook_id = %(id)s
    RETURNING previous_valid_until
"""
# The dispatcher advances `position` only `WHERE position = <what it read>`: after this,
# its stale update touches no row and it reloads the subscription.
_REPLAY = f"""
    UPDATE webhooks
    SET position = %(after)s, attempts = 0, next_attempt_at = NULL, updated_at = now()
    WHERE webhook_id = %(id)s
    RETURNING {_COLUMNS}
"""
_DELIVERIES = """
    SELECT delivery_id, position, event_id, attempt, status_code, duration_ms, error,
           next_attempt_at, attempted_at
    FROM webhook_deliveries
    WHERE webhook_id = %(id)s
      AND delivery_id < %(before)s
    ORDER BY delivery_id DESC
    LIMIT %(limit)s
"""
_EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")
_NO_ID = UUID(int=0)
_NO_DELIVERY = 2**63 - 1

UPDATABLE = ("url", "event_types", "member_id", "space", "description", "enabled")


class NewWebhook(msgspec.Struct, kw_only=True):
    """What `create` stores; `position` None starts at the ledger's readable head."""

    id: UUID
    url: str
    event_types: list[str] | None
    member_id: UUID | None
    space: str | None
    description: str
    enabled: bool
    wrapped: bytes
    kek_id: str
    position: int | None


async def head(conn: AsyncConnection[Any]) -> int:
    """The highest position every reader can reach now: where a new subscription starts."""
    return await readable_head(conn)


async def create(conn: AsyncConnection[Any], new: NewWebhook) -> WebhookOut:
    async with conn.transaction():
        values = msgspec.structs.asdict(new)
        if new.position is None:
            values["position"] = await readable_head(conn)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_INSERT, values)
        row = await cur.fetchone()
        await _same_master_key(conn, new.kek_id)
    return _webhook(row)


async def get(conn: AsyncConnection[Any], webhook_id: UUID) -> WebhookOut | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_GET, {"id": webhook_id})
    row = await cur.fetchone()
    return None if row is None else _webhook(row)


async def list_page(
    conn: AsyncConnection[Any], cursor: str | None, limit: int
) -> tuple[list[WebhookOut], str | None]:
    """Raises InvalidCursor on a cursor this listing did not hand out."""
    after = decode_cursor(cursor, WebhookCursor) if cursor else WebhookCursor(_EPOCH, _NO_ID)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        _LIST, {"created_at": after.created_at, "id": after.webhook_id, "limit": limit}
    )
    found = [_webhook(row) for row in await cur.fetchall()]
    if len(found) < limit:
        return found, None
    return found, encode_cursor(WebhookCursor(found[-1].created_at, found[-1].id))


async def update(
    conn: AsyncConnection[Any], webhook_id: UUID, changes: dict[str, Any]
) -> WebhookOut | None:
    """Set the `UPDATABLE` fields in `changes`. Enabling a disabled subscription clears
    its reason and its retry state, so delivery resumes at once from its checkpoint."""
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name))
        for name in UPDATABLE
        if name in changes
    ]
    if changes.get("enabled") is True:
        # On the right of SET, `enabled` is the value before this update.
        assignments += [
            sql.SQL("{0} = CASE WHEN enabled THEN {0} ELSE NULL END").format(
                sql.Identifier("disabled_reason")
            ),
            sql.SQL("attempts = CASE WHEN enabled THEN attempts ELSE 0 END"),
            sql.SQL("next_attempt_at = CASE WHEN enabled THEN next_attempt_at ELSE NULL END"),
        ]
    query = sql.SQL("UPDATE webhooks SET {} WHERE webhook_id = %(id)s RETURNING {}").format(
        sql.SQL(", ").join([*assignments, sql.SQL("updated_at = now()")]), sql.SQL(_COLUMNS)
    )
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        query, {**{k: changes[k] for k in UPDATABLE if k in changes}, "id": webhook_id}
    )
    row = await cur.fetchone()
    return None if row is None else _webhook(row)


async def delete(conn: AsyncConnection[Any], webhook_id: UUID) -> bool:
    """Its delivery log goes with it (ON DELETE CASCADE)."""
    cur = await conn.execute(_DELETE, {"id": webhook_id})
    return cur.rowcount == 1


class Rotated(msgspec.Struct, frozen=True, kw_only=True):
    previous_valid_until: datetime | None
    """Until when the superseded secret still signs; None when it was revoked at once."""


async def rotate_secret(
    conn: AsyncConnection[Any], webhook_id: UUID, wrapped: bytes, kek_id: str, grace: timedelta
) -> Rotated | None:
    """Store the new secret; the one it supersedes stays valid for `grace` (zero: not at
    all), in place of any previous one still in its grace period. None: no such webhook."""
    async with conn.transaction():
        cur = await conn.execute(
            _ROTATE, {"id": webhook_id, "wrapped": wrapped, "kek_id": kek_id, "grace": grace}
        )
        row = await cur.fetchone()
        if row is None:
            return None
        await _same_master_key(conn, kek_id)
    return Rotated(previous_valid_until=row[0])


async def replay(conn: AsyncConnection[Any], webhook_id: UUID, after: int) -> WebhookOut | None:
    """Move the checkpoint to `after`: every matching event past it is delivered again."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_REPLAY, {"id": webhook_id, "after": after})
    row = await cur.fetchone()
    return None if row is None else _webhook(row)


async def deliveries(
    conn: AsyncConnection[Any], webhook_id: UUID, cursor: str | None, limit: int
) -> tuple[list[DeliveryOut], str | None]:
    """Attempts newest first; raises InvalidCursor on a cursor this log did not hand out."""
    before = decode_cursor(cursor, DeliveryCursor).delivery_id if cursor else _NO_DELIVERY
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_DELIVERIES, {"id": webhook_id, "before": before, "limit": limit})
    found = [DeliveryOut(**row) for row in await cur.fetchall()]
    if len(found) < limit:
        return found, None
    return found, encode_cursor(DeliveryCursor(found[-1].delivery_id))


async def _same_master_key(conn: AsyncConnection[Any], kek_id: str) -> None:
    """A process still holding a rotated-away master key must not store a secret under it."""
    cur = await conn.execute(_LEDGER_KEK, {"name": HANDLE_SECRET})
    row = await cur.fetchone()
    if row is not None and row[0] != kek_id:
        raise WrongMasterKey(
            f"the ledger's keys are wrapped by master key {row[0]}, this process holds "
            f"{kek_id}: restart it with the current master key"
        )


def _webhook(row: dict[str, Any] | None) -> WebhookOut:
    assert row is not None, "INSERT … RETURNING answers a row"
    return WebhookOut(**row)
