"""Forgetting old Idempotency-Keys: the one statement that deletes from `idempotency_keys`.

The table is not the ledger (no append-only trigger guards it): a key only has to
outlive the client's retries, so rows past the retention period are deleted. A retry
that comes later than that is a new request and writes again.

Only the keys of one namespace go: the API's (`api:<key id>:…`). The importers' keys
(`import:…`) are kept, since they are what makes running an import again a no-op.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

PURGE = """
    DELETE FROM idempotency_keys
    WHERE starts_with(key, %(namespace)s)
      AND created_at < now() - %(retention)s
"""

API_NAMESPACE = "api:"


async def purge_idempotency_keys(
    conn: psycopg.AsyncConnection[Any], retention: timedelta, namespace: str = API_NAMESPACE
) -> int:
    """Delete the keys of `namespace` older than `retention`; answer how many went."""
    cur = await conn.execute(PURGE, {"retention": retention, "namespace": namespace})
    return cur.rowcount
