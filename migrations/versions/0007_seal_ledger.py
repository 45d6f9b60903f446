"""Seal the ledger: personal fields encrypted per member, handle tags as keyed digests.

Revision ID: 0007_seal_ledger
Revises: 0006_member_keys
Create Date: 2026-12-03

The one sanctioned rewrite of stored rows (docs/ledger.md, "Sealed payloads"). Every
event keeps its id, position, stream, stream version and order; only `data` (personal
fields into a box, services/privacy/sealing.py) and the handle tags in `events.tags` and
`event_tags` change. The append-only triggers are disabled for this transaction's
statements only, and enabled again before it commits. Members forgotten before this
revision get no key: their fields are sealed under a key that is thrown away at once.
Needs the master key, read as the app reads it (docs/operations.md, Keys), unless the
ledger is empty.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from alembic import op
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.errors import InvalidHandle
from domain.handles import normalize_handle
from services.privacy import sealing
from services.privacy.keyring import HANDLE_SECRET, member_key_context, secret_context
from services.privacy.master import KEY_BYTES, MasterKey, WrongMasterKey, load_master_key
from services.settings import load_settings

revision = "0007_seal_ledger"
down_revision = "0006_member_keys"
branch_labels = None
depends_on = None

BATCH = 5000
TABLES = ("events", "event_tags")

_READ = """
    SELECT position, event_id, type, data::text, tags
    FROM events
    WHERE position > %s
    ORDER BY position
    LIMIT %s
"""

_WRITE = """
    UPDATE events e
    SET data = n.data,
        tags = ARRAY(SELECT jsonb_array_elements_text(n.tags))
    FROM jsonb_to_recordset(%s::jsonb) AS n(position bigint, data jsonb, tags jsonb)
    WHERE e.position = n.position
"""

_FORGOTTEN = "SELECT data->>'member_id' FROM events WHERE type = 'MemberForgotten'"

_encoder = msgspec.json.Encoder()


def _connection() -> psycopg.Connection[Any]:
    """The psycopg connection under Alembic's, in the migration's transaction."""
    driver = op.get_bind().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


def _guards(enabled: bool) -> None:
    for table in TABLES:
        switch = "ENABLE" if enabled else "DISABLE"
        op.execute(f"ALTER TABLE {table} {switch} TRIGGER {table}_append_only")


def _handle_secret(conn: psycopg.Connection[Any], master: MasterKey) -> bytes:
    row = conn.execute(
        "SELECT wrapped, kek_id FROM ledger_secrets WHERE name = %s", [HANDLE_SECRET]
    ).fetchone()
    if row is None:
        secret = os.urandom(KEY_BYTES)
        conn.execute(
            "INSERT INTO ledger_secrets (name, wrapped, kek_id) VALUES (%s, %s, %s)",
            [HANDLE_SECRET, master.wrap(secret, secret_context(HANDLE_SECRET)), master.kek_id],
        )
        return secret
    if row[1] != master.kek_id:
        raise WrongMasterKey(f"the ledger's keys are wrapped by master key {row[1]}, not this one")
    return master.unwrap(bytes(row[0]), secret_context(HANDLE_SECRET))


def _keys(
    conn: psycopg.Connection[Any], master: MasterKey, members: Iterable[UUID]
) -> dict[UUID, bytes]:
    """The members' data keys, made for those who have none yet (one query each way)."""
    wanted = list(set(members))
    made = [(m, master.wrap(os.urandom(KEY_BYTES), member_key_context(m))) for m in wanted]
    conn.execute(
        """
        INSERT INTO member_keys (member_id, wrapped, kek_id)
        SELECT n.member_id, n.wrapped, %s
        FROM unnest(%s::uuid[], %s::bytea[]) AS n(member_id, wrapped)
        ON CONFLICT (member_id) DO NOTHING
        """,
        [master.kek_id, [m for m, _ in made], [w for _, w in made]],
    )
    rows = conn.execute(
        "SELECT member_id, wrapped FROM member_keys WHERE member_id = ANY(%s::uuid[])", [wanted]
    ).fetchall()
    return {m: master.unwrap(bytes(w), member_key_context(m)) for m, w in rows}


def _rows(conn: psycopg.Connection[Any]) -> Iterable[list[tuple[Any, ...]]]:
    after = 0
    while rows := conn.execute(_READ, [after, BATCH]).fetchall():
        yield rows
        after = rows[-1][0]


def upgrade() -> None:
    conn = _connection()
    if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM events)").fetchone() == (True,):
        return
    master = load_master_key(load_settings())
    secret = _handle_secret(conn, master)
    forgotten = {UUID(row[0]) for row in conn.execute(_FORGOTTEN)}
    _guards(enabled=False)
    for rows in _rows(conn):
        payloads = [msgspec.json.decode(row[3]) for row in rows]
        owners = [sealing.owner_of(row[2], p) for row, p in zip(rows, payloads, strict=True)]
        keys = _keys(conn, master, {o for o in owners if o is not None and o not in forgotten})
        changed = []
        for row, payload, owner in zip(rows, payloads, owners, strict=True):
            position, event_id, type_, _, tags = row
            hashed = [sealing.handle_digest(secret, tag) for tag in tags]
            if (owner is None or sealing.SEALED in payload) and hashed == tags:
                continue
            if owner is not None and sealing.SEALED not in payload:
                key = keys.get(owner) or os.urandom(KEY_BYTES)  # forgotten: key never kept
                sealing.seal(payload, event_id, type_, owner, AESGCM(key))
            changed.append({"position": position, "data": payload, "tags": hashed})
        if changed:
            conn.execute(_WRITE, [_encoder.encode(changed).decode()])
    for (tag,) in conn.execute(
        "SELECT DISTINCT tag FROM event_tags WHERE tag LIKE 'handle:%%:%%'"
    ).fetchall():
        digest = sealing.handle_digest(secret, tag)
        conn.execute("UPDATE event_tags SET tag = %s WHERE tag = %s", [digest, tag])
    _guards(enabled=True)


def downgrade() -> None:
    """Open what can still be opened: an erased member's fields come back as blanks and
    their handle tags stay digests (the handles are gone)."""
    conn = _connection()
    if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM events)").fetchone() == (True,):
        return
    master = load_master_key(load_settings())
    secret = _handle_secret(conn, master)
    plain: dict[str, str] = {}
    _guards(enabled=False)
    for rows in _rows(conn):
        boxes = [sealing.peek(data) for _, _, _, data, _ in rows]
        keys = _keys_present(conn, master, {b for b in boxes if b is not None})
        changed = []
        for (position, event_id, type_, data, tags), box in zip(rows, boxes, strict=True):
            if box is None:
                continue
            opened = msgspec.json.decode(
                sealing.open_for_fold(data.encode(), event_id, type_, sealing.ciphers(keys))
            )
            opened.pop(sealing.SEALED)
            for handle in _handles(opened):
                plain[sealing.handle_digest(secret, f"handle:{handle}")] = f"handle:{handle}"
            changed.append({"position": position, "data": opened, "tags": tags})
        if changed:
            conn.execute(_WRITE, [_encoder.encode(changed).decode()])
    conn.execute(
        """
        UPDATE events
        SET tags = ARRAY(SELECT coalesce(%(plain)s::jsonb ->> t, t) FROM unnest(tags) AS t)
        WHERE tags && %(digests)s::text[]
        """,
        {"plain": _encoder.encode(plain).decode(), "digests": list(plain)},
    )
    for digest, tag in plain.items():
        conn.execute("UPDATE event_tags SET tag = %s WHERE tag = %s", [tag, digest])
    _guards(enabled=True)


def _keys_present(
    conn: psycopg.Connection[Any], master: MasterKey, members: set[UUID]
) -> dict[UUID, bytes]:
    rows = conn.execute(
        "SELECT member_id, wrapped FROM member_keys WHERE member_id = ANY(%s::uuid[])",
        [list(members)],
    ).fetchall()
    return {m: master.unwrap(bytes(w), member_key_context(m)) for m, w in rows}


def _handles(payload: dict[str, Any]) -> list[str]:
    found = [*(payload.get("handles") or ()), payload.get("handle") or ""]
    keys = []
    for handle in found:
        try:
            keys.append(normalize_handle(handle))
        except InvalidHandle:  # today's rules refuse it: no tag was made for it either
            continue
    return keys
