"""A member's data on request: everything about and by them, JSON or JSONL, admin only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from services import bootstrap
from services.api.controllers import exports

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
YANN_SAYS = "Connections are shortcuts to trust"
CAROLINE_SAYS = "Recaps keep the conversation going"


async def _post(client: Client, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    answer = await client.post(path, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _kaizenblog(client: Client, admin: dict[str, str]) -> dict[str, Any]:
    """Yann, a duplicate of Yann merged into him, Valeria and Caroline, and what they did."""
    ids = {}
    for name, handle in [
        ("yann", "twitter:@yannr"),
        ("yann_old", "twitter:@yann_old"),
        ("valeria", "twitter:@ConversationAge"),
        ("caroline", "twitter:@CASUDI"),
    ]:
        display = {"yann": "Yann Ropars", "yann_old": "Yann R"}.get(name, name.title())
        body = {"display_name": display, "handles": [handle]}
        ids[name] = (await _post(client, "/v1/members", admin, body))["id"]
    contribution = {"kind": "chat_answer", "space": "kaizenblog"}
    await _post(
        client,
        "/v1/contributions",
        admin,
        {**contribution, "member": ids["yann"], "body": YANN_SAYS},
    )
    await _post(
        client,
        "/v1/contributions",
        admin,
        {**contribution, "member": ids["yann_old"], "title": "Old"},
    )
    await _post(
        client,
        "/v1/contributions",
        admin,
        {**contribution, "member": ids["caroline"], "body": CAROLINE_SAYS},
    )
    await _post(client, "/v1/mentions", admin, {"member": ids["valeria"], "mentioned": ids["yann"]})
    await _post(
        client,
        "/v1/recognitions",
        admin,
        {"from": ids["valeria"], "to": ids["yann"], "kind": "highlight", "reason": "sparked it"},
    )
    await _post(
        client,
        "/v1/introductions",
        admin,
        {"introducer": ids["yann"], "introduced": [ids["valeria"], ids["caroline"]]},
    )
    await _post(client, f"/v1/members/{ids['yann']}/merges", admin, {"duplicate": ids["yann_old"]})
    return ids


async def _feed(client: Client, admin: dict[str, str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (
        await client.get("/v1/events", headers=admin, params={"limit": 1000})
    ).json()["events"]
    return events


def _names(event: dict[str, Any], *members: str) -> bool:
    return any(f"member:{member}" in event["tags"] for member in members)


async def test_the_export_holds_the_profile_and_every_event_about_and_by_the_member(
    client: Client, admin: dict[str, str], database_url: str
) -> None:
    ids = await _kaizenblog(client, admin)
    await bootstrap.runner(database_url).run()
    feed = await _feed(client, admin)

    answer = await client.get(f"/v1/members/{ids['yann']}/export", headers=admin)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["cache-control"] == "no-store"
    export = answer.json()
    assert export["member_id"] == ids["yann"]
    assert export["members"] == [ids["yann"], ids["yann_old"]]
    assert export["profile"]["display_name"] == "Yann Ropars"
    assert export["profile"]["contributions_total"] == 2
    expected = [e for e in reversed(feed) if _names(e, ids["yann"], ids["yann_old"])]
    assert export["events"] == expected
    assert {e["type"] for e in export["events"]} == {
        "MemberRegistered",
        "ContributionRecorded",
        "MentionRecorded",
        "RecognitionGiven",
        "IntroductionMade",
        "MembersMerged",
    }
    assert YANN_SAYS in answer.text and "sparked it" in answer.text
    assert CAROLINE_SAYS not in answer.text


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"format": "jsonl"}, {}), ({}, {"Accept": "application/x-ndjson"})],
    ids=["format", "accept"],
)
async def test_jsonl_is_a_header_line_then_one_event_per_line(
    client: Client, admin: dict[str, str], params: dict[str, str], headers: dict[str, str]
) -> None:
    ids = await _kaizenblog(client, admin)
    path = f"/v1/members/{ids['yann']}/export"
    whole = (await client.get(path, headers=admin)).json()

    answer = await client.get(path, headers={**admin, **headers}, params=params)

    assert answer.headers["content-type"].startswith("application/x-ndjson")
    header, *events = [json.loads(line) for line in answer.text.splitlines()]
    assert header == {k: v for k, v in whole.items() if k not in {"events", "exported_at"}} | {
        "exported_at": header["exported_at"]
    }
    assert events == whole["events"]


async def test_a_big_member_is_exported_a_page_at_a_time_without_loss_or_repeat(
    client: Client, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await _kaizenblog(client, admin)
    everything = (await client.get(f"/v1/members/{ids['yann']}/export", headers=admin)).json()
    monkeypatch.setattr(exports, "PAGE", 2)

    for params in ({}, {"format": "jsonl"}):
        answer = await client.get(f"/v1/members/{ids['yann']}/export", headers=admin, params=params)
        text = answer.text
        events = (
            json.loads(text)["events"]
            if not params
            else [json.loads(line) for line in text.splitlines()[1:]]
        )

        assert len(everything["events"]) > 2 * exports.PAGE
        assert events == everything["events"]


async def test_an_unknown_member_is_a_404_problem(client: Client, admin: dict[str, str]) -> None:
    answer = await client.get(
        "/v1/members/01a222db-2d94-7e63-ac4b-20b6ac2fb8d1/export", headers=admin
    )

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"


async def test_only_an_admin_key_may_export(
    client: Client, admin: dict[str, str], writer: dict[str, str], reader: dict[str, str]
) -> None:
    ids = await _kaizenblog(client, admin)
    path = f"/v1/members/{ids['yann']}/export"

    assert (await client.get(path)).status_code == 401
    for headers in (reader, writer):
        refused = await client.get(path, headers=headers)
        assert refused.status_code == 403 and "scope admin" in refused.json()["detail"]
        assert "Yann" not in refused.text


async def test_after_erasure_the_export_holds_ids_times_and_kinds_and_nothing_personal(
    client: Client, admin: dict[str, str], database_url: str
) -> None:
    ids = await _kaizenblog(client, admin)
    await _post(client, f"/v1/members/{ids['yann']}/erasure", admin, {"reason": "asked to"})
    await bootstrap.runner(database_url).run()

    answer = await client.get(f"/v1/members/{ids['yann']}/export", headers=admin)

    assert answer.status_code == 200
    export = answer.json()
    kinds = {e["type"] for e in export["events"]}
    assert {"MemberRegistered", "ContributionRecorded", "MemberForgotten"} <= kinds
    assert all(e["event_id"] and e["occurred_at"] for e in export["events"])
    assert export["profile"] is None or export["profile"]["forgotten"]
    for personal in ("Yann Ropars", "Yann R", "yannr", "yann_old", YANN_SAYS, "asked to"):
        assert personal not in answer.text
