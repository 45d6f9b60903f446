"""API keys: create, list, revoke and authenticate `cl_…` bearer tokens.

The token is shown once, when it is created; the table keeps only its sha256.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from domain.ids import new_id

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
"""Narrowest first: each scope grants everything the ones before it grant."""

MARKER = "cl_"
PREFIX_LENGTH = 8
_TOKEN = re.compile(r"cl_[A-Za-z0-9_-]{43}")


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key as listings show it: never the token, never its hash."""

    key_id: UUID
    name: str
    scope: Scope
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


def allows(scope_held: str, scope_needed: str) -> bool:
    """Whether a key with `scope_held` may do what needs `scope_needed` (admin ⊇ write ⊇ read)."""
    return _rank(scope_held) >= _rank(scope_needed)


def _rank(scope: str) -> int:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; the scopes are {', '.join(SCOPES)}")
    return SCOPES.index(scope)


def is_token(text: str) -> bool:
    """Whether `text` is a whole token (`cl_` and 43 characters), not an id or a prefix."""
    return _TOKEN.fullmatch(text.strip()) is not None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_COLUMNS = "key_id, name, scope, prefix, created_at, last_used_at, revoked_at"

INSERT_KEY = f"""
    INSERT INTO api_keys (key_id, name, scope, prefix, secret_hash)
    VALUES (%(key_id)s, %(name)s, %(scope)s, %(prefix)s, %(secret_hash)s)
    RETURNING {_COLUMNS}
"""

LIST_KEYS = f"""
    SELECT {_COLUMNS}
    FROM api_keys
    ORDER BY created_at, key_id
"""

FIND_KEYS = f"""
    SELECT {_COLUMNS}
    FROM api_keys
    WHERE key_id = %(key_id)s
       OR prefix IN (%(given)s, %(bare)s)
       OR secret_hash = %(secret_hash)s
    ORDER BY created_at, key_id
    FOR UPDATE
"""

REVOKE_KEY = f"""
    UPDATE api_keys
    SET revoked_at = coalesce(revoked_at, now())
    WHERE key_id = %(key_id)s
    RETURNING {_COLUMNS}
"""

AUTHENTICATE = f"""
    SELECT {_COLUMNS},
           last_used_at IS NULL OR last_used_at < now() - interval '1 minute' AS stale
    FROM api_keys
    WHERE secret_hash = %(secret_hash)s
      AND revoked_at IS NULL
"""

TOUCH_KEY = """
    UPDATE api_keys
    SET last_used_at = now()
    WHERE key_id = %(key_id)s
"""


async def create_key(conn: AsyncConnection[Any], name: str, scope: str) -> tuple[ApiKey, str]:
    """A new key and its token; the token cannot be recovered afterwards."""
    if not name.strip():
        raise ValueError("an API key needs a name that says who or what uses it")
    _rank(scope)
    token = MARKER + secrets.token_urlsafe(32)
    params = {
        "key_id": new_id(),
        "name": name.strip(),
        "scope": scope,
        "prefix": token.removeprefix(MARKER)[:PREFIX_LENGTH],
        "secret_hash": token_hash(token),
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(INSERT_KEY, params)
        row = await cur.fetchone()
    assert row is not None
    return ApiKey(**row), token


async def list_keys(conn: AsyncConnection[Any]) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(LIST_KEYS)
        return [ApiKey(**row) for row in await cur.fetchall()]


async def revoke_key(conn: AsyncConnection[Any], key_id_or_prefix: str) -> ApiKey:
    """Revoke the one key with this id, prefix (`cl_` optional) or token; again is a no-op."""
    given = key_id_or_prefix.strip()
    params = {
        "key_id": _as_uuid(given),
        "given": given,
        "bare": given.removeprefix(MARKER).rstrip("…"),
        "secret_hash": token_hash(given),
    }
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(FIND_KEYS, params)
        found = [ApiKey(**row) for row in await cur.fetchall()]
        if not found:
            raise LookupError(
                f"no API key has the id or prefix {given!r}; `community-ledger keys list` "
                "shows them"
            )
        if len(found) > 1:
            ids = ", ".join(str(key.key_id) for key in found)
            raise LookupError(
                f"{len(found)} API keys have the prefix {given!r} ({ids}); revoke one by its key id"
            )
        await cur.execute(REVOKE_KEY, {"key_id": found[0].key_id})
        row = await cur.fetchone()
    assert row is not None
    return ApiKey(**row)


async def authenticate(conn: AsyncConnection[Any], token: str) -> ApiKey | None:
    """The active key behind `token`, or None when it is malformed, unknown or revoked."""
    if not _TOKEN.fullmatch(token):
        return None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(AUTHENTICATE, {"secret_hash": token_hash(token)}, prepare=True)
        row = await cur.fetchone()
        if row is None:
            return None
        # At most one write a minute per key: enough to tell stale keys from live ones
        # without turning every authenticated read into a write.
        if row.pop("stale"):
            await cur.execute(TOUCH_KEY, {"key_id": row["key_id"]})
    return ApiKey(**row)


def _as_uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None
