"""The member status rule, in SQL, against its documented definition (docs/projections.md)
at each boundary: the profile and the `status` filter of lists give the same answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from services.projector.runner import Runner
from services.queries import members

pytestmark = pytest.mark.anyio

NOW = datetime(2025, 6, 30, 12, tzinfo=UTC)
SECOND = timedelta(seconds=1)

# handle: (moments of the member's contributions, documented status at NOW)
CASES: dict[str, tuple[list[datetime], str]] = {
    "github:never": ([], "inactive"),
    "github:quiet-90d": ([NOW - timedelta(days=400), NOW - timedelta(days=90)], "occasional"),
    "github:quiet-90d-1s": (
        [NOW - timedelta(days=400), NOW - timedelta(days=90) - SECOND],
        "inactive",
    ),
    "github:first-30d": ([NOW - timedelta(days=30)] + [NOW - SECOND] * 9, "newcomer"),
    "github:first-30d-1s": ([NOW - timedelta(days=30) - SECOND] + [NOW - SECOND] * 9, "regular"),
    "github:five-in-90d": (
        [NOW - timedelta(days=200)] + [NOW - timedelta(days=2)] * 5,
        "regular",
    ),
    "github:four-in-90d": (
        [NOW - timedelta(days=200)] + [NOW - timedelta(days=2)] * 4,
        "occasional",
    ),
    # Counts are kept per UTC day: the day 90 days back is in the window, the one before not.
    "github:fifth-on-day-90": (
        [NOW - timedelta(days=90, hours=11)] + [NOW - timedelta(days=2)] * 4,
        "regular",
    ),
    "github:fifth-on-day-91": (
        [NOW - timedelta(days=90, hours=13)] + [NOW - timedelta(days=2)] * 4,
        "occasional",
    ),
}


async def test_status_follows_its_documented_definition_at_every_boundary(
    client: AsyncTestClient[Any],
    writer: dict[str, str],
    database_url: str,
    projector_url: str,
) -> None:
    items: list[dict[str, Any]] = []
    for handle, (moments, _) in CASES.items():
        items.append({"command": "register_member", "display_name": handle, "handles": [handle]})
        items += [
            {
                "command": "record_contribution",
                "member": handle,
                "kind": "chat_answer",
                "space": "kaizenblog",
                "occurred_at": moment.isoformat(),
            }
            for moment in moments
        ]
    written = await client.post("/v1/batch", json={"items": items}, headers=writer)
    assert written.status_code == 201, written.text
    assert await Runner(projector_url).run() == []

    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        answered = written.json()["ids"]
        ids = {
            item["handles"][0]: UUID(answered[index])
            for index, item in enumerate(items)
            if item["command"] == "register_member"
        }
        found = {}
        for handle in CASES:
            member = await members.profile(conn, ids[handle], now=NOW)
            assert member is not None, handle
            found[handle] = member.status
        filtered = {}
        for status in ("newcomer", "regular", "occasional", "inactive"):
            page, _ = await members.list_members(
                conn, q=None, status=status, sort="activity", cursor=None, limit=100, now=NOW
            )
            filtered |= {m.id: status for m in page}

    expected = {handle: status for handle, (_, status) in CASES.items()}
    assert found == expected
    assert {handle: filtered[ids[handle]] for handle in CASES} == expected
