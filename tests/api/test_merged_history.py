"""A survivor's history holds the events of every member merged into it, paged as one."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]


@pytest.fixture
def writer(admin: dict[str, str]) -> dict[str, str]:
    """Merges cannot be undone, so they need an admin key (tests/api/test_irreversible.py)."""
    return admin


async def _post(client: Client, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    answer = await client.post(path, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _register(client: Client, writer: dict[str, str], name: str, handle: str) -> str:
    body = {"display_name": name, "handles": [handle]}
    member: str = (await _post(client, "/v1/members", writer, body))["id"]
    return member


async def _contribute(client: Client, writer: dict[str, str], member: str, title: str) -> int:
    body = {"member": member, "kind": "article", "space": "blog", "title": title}
    position: int = (await _post(client, "/v1/contributions", writer, body))["positions"][-1]
    return position


async def _merge(client: Client, writer: dict[str, str], survivor: str, duplicate: str) -> int:
    path = f"/v1/members/{survivor}/merges"
    position: int = (await _post(client, path, writer, {"duplicate": duplicate}))["positions"][-1]
    return position


async def _history(
    client: Client, reader: dict[str, str], member: str, **params: Any
) -> dict[str, Any]:
    answer = await client.get(f"/v1/members/{member}/history", headers=reader, params=params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


async def _every_page(
    client: Client, reader: dict[str, str], member: str, limit: int
) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        page = await _history(client, reader, member, **params)
        pages.append([event["position"] for event in page["events"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_after_a_merge_the_survivors_history_holds_the_duplicates_events(
    client: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    ann = await _register(client, writer, "Ann", "github:ann")
    ann_b = await _register(client, writer, "Ann B", "twitter:@annb")
    await _contribute(client, writer, ann, "Ann's article")
    await _contribute(client, writer, ann_b, "Ann B's article")
    await _merge(client, writer, ann, ann_b)

    events = (await _history(client, reader, ann))["events"]

    assert [(e["type"], e["data"].get("title")) for e in events] == [
        ("MembersMerged", None),
        ("ContributionRecorded", "Ann B's article"),
        ("ContributionRecorded", "Ann's article"),
        ("MemberRegistered", None),
        ("MemberRegistered", None),
    ]
    positions = [e["position"] for e in events]
    assert positions == sorted(positions, reverse=True)
    assert [e["data"]["member_id"] for e in events[3:]] == [ann_b, ann]


async def test_a_chain_of_merges_gives_the_last_survivor_all_three_histories_in_order(
    client: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    a = await _register(client, writer, "A", "github:chain-a")
    b = await _register(client, writer, "B", "github:chain-b")
    c = await _register(client, writer, "C", "github:chain-c")
    made = [await _contribute(client, writer, m, f"by {m}") for m in (c, b, a, c, b)]
    c_into_b = await _merge(client, writer, b, c)
    b_into_a = await _merge(client, writer, a, b)

    titles = [
        e["data"]["title"]
        for e in (await _history(client, reader, a, types="ContributionRecorded"))["events"]
    ]
    merges = (await _history(client, reader, a, types="MembersMerged"))["events"]
    everything = await _history(client, reader, a, limit=500)

    assert titles == [f"by {m}" for m in (b, c, a, b, c)]
    assert [e["position"] for e in merges] == [b_into_a, c_into_b]
    positions = [e["position"] for e in everything["events"]]
    assert positions == sorted(set(positions), reverse=True)
    assert set(made) <= set(positions)
    assert len(positions) == 3 + len(made) + 2


async def test_paging_a_merged_history_gives_each_event_once_in_position_order(
    client: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    ann = await _register(client, writer, "Ann", "github:pages-ann")
    ann_b = await _register(client, writer, "Ann B", "twitter:@pages_annb")
    for n in range(4):
        await _contribute(client, writer, ann if n % 2 else ann_b, f"article {n}")
    # Tagged with both members: one event, however many of the member's tags it carries.
    await _post(client, "/v1/mentions", writer, {"member": ann, "mentioned": ann_b})
    await _merge(client, writer, ann, ann_b)
    whole = [e["position"] for e in (await _history(client, reader, ann, limit=500))["events"]]

    pages = await _every_page(client, reader, ann, limit=2)

    assert len(whole) == 2 + 4 + 1 + 1
    assert [p for page in pages for p in page] == whole
    assert all(len(page) <= 2 for page in pages)


async def test_a_cursor_into_a_merged_history_is_stable_while_events_are_added(
    client: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    ann = await _register(client, writer, "Ann", "github:cursor-ann")
    ann_b = await _register(client, writer, "Ann B", "twitter:@cursor_annb")
    for member in (ann, ann_b, ann, ann_b):
        await _contribute(client, writer, member, "before")
    await _merge(client, writer, ann, ann_b)
    contributions = {"types": "ContributionRecorded", "limit": 3}
    first = await _history(client, reader, ann, **contributions)
    older = await _history(client, reader, ann, **contributions, cursor=first["next_cursor"])

    await _contribute(client, writer, ann, "after")
    older_again = await _history(client, reader, ann, **contributions, cursor=first["next_cursor"])

    assert older_again == older
    seen = first["events"] + older["events"]
    assert [e["data"]["member_id"] for e in seen] == [ann_b, ann, ann_b, ann]
    assert older["next_cursor"] is None


async def test_the_duplicates_own_history_stays_its_own_after_the_merge(
    client: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    ann = await _register(client, writer, "Ann", "github:own-ann")
    ann_b = await _register(client, writer, "Ann B", "twitter:@own_annb")
    await _contribute(client, writer, ann, "Ann's")
    await _contribute(client, writer, ann_b, "Ann B's")
    merged = await _merge(client, writer, ann, ann_b)

    events = (await _history(client, reader, ann_b))["events"]

    assert [e["type"] for e in events] == [
        "MembersMerged",
        "ContributionRecorded",
        "MemberRegistered",
    ]
    assert events[0]["position"] == merged
    assert events[0]["data"] == {"survivor_id": ann, "duplicate_id": ann_b}
