"""Reads over HTTP: profiles, lists, history, connections, stats, leaderboards, consistency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from services.api.app import create_app

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]


@pytest.fixture
async def live(api_url: str, projector_url: str) -> AsyncIterator[Client]:
    """The app with its projector running in-process, as `serve --projector` runs it."""
    async with AsyncTestClient(
        app=create_app(api_url, run_projector=True, projector_url=projector_url)
    ) as client:
        yield client


async def post(client: Client, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    answer = await client.post(path, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_write_is_readable_with_its_position_as_min_position(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    ana = (
        await post(
            live, "/v1/members", writer, {"display_name": "Ana", "handles": ["twitter:@Ana_B"]}
        )
    )["id"]
    bob = (await post(live, "/v1/members", writer, {"display_name": "Bob"}))["id"]
    answer = await post(
        live,
        "/v1/contributions",
        writer,
        {"member": ana, "kind": "chat_answer", "space": "kaizenblog", "title": "Q1"},
    )
    await post(
        live,
        "/v1/mentions",
        writer,
        {"member": ana, "mentioned": bob, "contribution_id": answer["id"]},
    )
    last = await post(live, "/v1/recognitions", writer, {"from": bob, "to": ana, "kind": "kudos"})

    profile = await live.get(
        f"/v1/members/{ana}", headers=reader, params={"min_position": last["positions"][-1]}
    )

    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert body["contributions_total"] == 1 and body["contributions_by_kind"] == {"chat_answer": 1}
    assert body["mentions_given"] == 1 and body["recognitions_received"] == 1
    assert body["connections"] == 1 and body["status"] == "newcomer"
    assert profile.headers["etag"] == '"1"'
    by_handle = await live.get("/v1/members/by-handle/twitter/ana_b", headers=reader)
    assert by_handle.json()["id"] == ana


async def test_min_position_beyond_the_ledger_is_a_503_with_retry_after(
    client: Client, reader: dict[str, str]
) -> None:
    from services.api import consistency

    consistency.WAIT_SECONDS, saved = 0.2, consistency.WAIT_SECONDS
    try:
        answer = await client.get("/v1/members", headers={**reader, "Ledger-Min-Position": "999"})
    finally:
        consistency.WAIT_SECONDS = saved

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1" and "999" in answer.json()["detail"]


async def test_lists_page_with_a_cursor_and_filter(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    last = None
    for index in range(5):
        member = await post(live, "/v1/members", writer, {"display_name": f"Member {index}"})
        for _ in range(index):
            last = await post(
                live,
                "/v1/contributions",
                writer,
                {"member": member["id"], "kind": "answer", "space": "forum"},
            )
    assert last is not None
    wait = {"min_position": last["positions"][-1], "sort": "contributions", "limit": 2}

    first = (await live.get("/v1/members", headers=reader, params=wait)).json()
    second = (
        await live.get(
            "/v1/members", headers=reader, params={**wait, "cursor": first["next_cursor"]}
        )
    ).json()
    searched = (await live.get("/v1/members", headers=reader, params={"q": "ember 3"})).json()

    assert [m["contributions_total"] for m in first["members"] + second["members"]] == [4, 3, 2, 1]
    assert [m["display_name"] for m in searched["members"]] == ["Member 3"]
    broken = await live.get("/v1/members", headers=reader, params={"cursor": "nonsense"})
    assert broken.status_code == 400


async def test_history_is_newest_first_with_a_position_cursor(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    ana = (await post(live, "/v1/members", writer, {"display_name": "Ana"}))["id"]
    for title in ("one", "two", "three"):
        await post(
            live,
            "/v1/contributions",
            writer,
            {"member": ana, "kind": "article", "space": "blog", "title": title},
        )

    page = (
        await live.get(
            f"/v1/members/{ana}/history",
            headers=reader,
            params={"limit": 2, "types": "ContributionRecorded"},
        )
    ).json()
    rest = (
        await live.get(
            f"/v1/members/{ana}/history",
            headers=reader,
            params={"limit": 2, "cursor": page["next_cursor"], "types": "ContributionRecorded"},
        )
    ).json()

    assert [e["data"]["title"] for e in page["events"] + rest["events"]] == ["three", "two", "one"]
    assert rest["next_cursor"] is None


async def test_history_of_an_unknown_member_is_404_and_of_a_quiet_one_an_empty_page(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    ana = (await post(live, "/v1/members", writer, {"display_name": "Ana"}))["id"]

    unknown = await live.get(
        "/v1/members/0195c9a6-0000-7000-8000-000000000000/history", headers=reader
    )
    quiet = await live.get(
        f"/v1/members/{ana}/history", headers=reader, params={"types": "MentionRecorded"}
    )
    past_the_end = await live.get(
        f"/v1/members/{ana}/history", headers=reader, params={"cursor": 1}
    )

    assert unknown.status_code == 404, unknown.text
    assert "no member with id 0195c9a6-0000-7000-8000-000000000000" in unknown.text
    assert quiet.status_code == 200 and quiet.json() == {"events": [], "next_cursor": None}
    assert past_the_end.status_code == 200 and past_the_end.json()["events"] == []


async def test_stats_group_and_leaderboards_rank(
    live: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    ana = (await post(live, "/v1/members", writer, {"display_name": "Ana"}))["id"]
    bob = (await post(live, "/v1/members", writer, {"display_name": "Bob"}))["id"]
    for member, kind in ((ana, "article"), (ana, "review"), (bob, "review")):
        last = await post(
            live,
            "/v1/contributions",
            writer,
            {
                "member": member,
                "kind": kind,
                "space": "blog",
                "occurred_at": "2026-11-02T10:00:00Z",
            },
        )
    position = {"min_position": last["positions"][-1]}

    by_member = (
        await live.get(
            "/v1/stats/contributions", headers=reader, params={**position, "group_by": "member"}
        )
    ).json()
    by_kind_month = (
        await live.get(
            "/v1/stats/contributions",
            headers=reader,
            params={**position, "group_by": "kind", "period": "month"},
        )
    ).json()
    board = (
        await live.get(
            "/v1/leaderboards/contributions", headers=reader, params={**position, "window": "all"}
        )
    ).json()

    assert {(r["display_name"], r["count"]) for r in by_member["rows"]} == {("Ana", 2), ("Bob", 1)}
    assert [(r["period_start"], r["kind"], r["count"]) for r in by_kind_month["rows"]] == [
        ("2026-11-01", "article", 1),
        ("2026-11-01", "review", 2),
    ]
    assert [(e["rank"], e["display_name"], e["value"]) for e in board["entries"]] == [
        (1, "Ana", 2),
        (2, "Bob", 1),
    ]
    unknown = await live.get("/v1/leaderboards/karma", headers=reader)
    assert unknown.status_code == 404 and "contributions" in unknown.json()["detail"]


async def test_reads_need_a_key(client: Client) -> None:
    answer = await client.get("/v1/members")

    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
