"""Forgetting old Idempotency-Keys: the one statement that deletes from `idempotency_keys`.

The table is not the ledger (no append-only trigger guards it): a key only has to
outlive the client's retries, so rows past the retention period are deleted. A retry
that comes later than that is a new request and writes again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

PURGE = """
    DELETE FROM idempotency_keys
    WHERE created_at < now() - %(retention)s
"""


async def purge_idempotency_keys(conn: psycopg.AsyncConnection[Any], retention: timedelta) -> int:
    """Delete the keys older than `retention`; answer how many went."""
    cur = await conn.execute(PURGE, {"retention": retention})
    return cur.rowcount
