"""Reads over several tags at once: a merged member's history, and the merges behind it."""

from __future__ import annotations

import psycopg
import pytest

from services.store.ledger import READ_TAGGED_ANY, Ledger
from tests.store.conftest import new_event

pytestmark = pytest.mark.anyio


async def test_pages_over_several_tags_give_each_event_once_newest_first(ledger: Ledger) -> None:
    tags = [("member:ann",), ("member:annb",), ("member:ann", "member:annb"), ("member:cy",)]
    await ledger.append([new_event(tags=tags[i % 4]) for i in range(12)])
    wanted = {p for p in range(1, 13) if (p - 1) % 4 != 3}

    pages, before = [], None
    while page := await ledger.read_tagged_any(
        ["member:ann", "member:annb"], before=before, limit=2
    ):
        pages.append([e.position for e in page])
        before = page[-1].position

    assert [p for page in pages for p in page] == sorted(wanted, reverse=True)
    assert [len(page) for page in pages] == [2, 2, 2, 2, 1]


async def test_filters_apply_before_the_page_is_cut(ledger: Ledger) -> None:
    await ledger.append([new_event(tags=("member:ann",), type="A") for _ in range(3)])
    await ledger.append([new_event(tags=("member:annb",), type="B") for _ in range(3)])

    only_a = await ledger.read_tagged_any(["member:annb", "member:ann"], types=["A"], limit=2)

    assert [e.position for e in only_a] == [3, 2]


async def test_each_tag_is_walked_backwards_on_the_index_and_stops_at_the_page_size(
    ledger: Ledger, database_url: str
) -> None:
    await ledger.append([new_event(tags=(f"member:{i % 50}",)) for i in range(20_000)])
    with psycopg.connect(database_url) as conn:
        conn.execute("ANALYZE")
        params = {
            "tags": ["member:7", "member:8", "member:9"],
            "before": 15_000,
            "limit": 20,
            "types": None,
            "since": None,
            "until": None,
        }
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + READ_TAGGED_ANY, params))

    assert "Index Only Scan Backward using event_tags_pkey" in plan, plan
    assert plan.count("Limit") == 2, plan
    assert "Seq Scan on event" not in plan, plan


async def test_events_of_a_type_are_found_by_any_of_their_tags_oldest_first(
    ledger: Ledger,
) -> None:
    await ledger.append(
        [
            new_event(tags=("member:a", "member:b"), type="MembersMerged"),
            new_event(tags=("member:a",), type="Noted"),
            new_event(tags=("member:c", "member:d"), type="MembersMerged"),
            new_event(tags=("member:b", "member:c"), type="MembersMerged"),
        ]
    )

    found = await ledger.read_tagged_of_types(["member:a", "member:b"], ["MembersMerged"])

    assert [e.position for e in found] == [1, 4]
