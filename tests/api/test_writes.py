"""Writes over HTTP: rules, idempotency, problems, and nothing written on any error."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.store.conftest import count_rows

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]


async def register(client: Client, writer: dict[str, str], name: str, *handles: str) -> str:
    answer = await client.post(
        "/v1/members", json={"display_name": name, "handles": list(handles)}, headers=writer
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def test_registering_and_contributing_answer_ids_and_positions(
    client: Client, writer: dict[str, str]
) -> None:
    ana = await register(client, writer, "Ana", "twitter:@ana")

    answer = await client.post(
        "/v1/contributions",
        headers=writer,
        json={
            "member": "Twitter:@ANA",
            "kind": "chat_answer",
            "space": "kaizenblog",
            "body": "Connections are shortcuts",
            "attributes": {"question": "Q1"},
        },
    )

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["positions"] == [2] and len(body["event_ids"]) == 1 and body["id"]
    recorded = await client.get(f"/v1/events/{body['event_ids'][0]}", headers=writer)
    assert recorded.json()["data"]["member_id"] == ana


async def test_register_unknown_creates_the_member_in_the_same_write(
    client: Client, writer: dict[str, str], database_url: str
) -> None:
    answer = await client.post(
        "/v1/recognitions",
        headers=writer,
        json={
            "from": "twitter:@host",
            "to": "twitter:@guest",
            "kind": "kudos",
            "register_unknown": True,
        },
    )

    assert answer.status_code == 201, answer.text
    assert len(answer.json()["positions"]) == 3
    assert count_rows(database_url) == 3


async def test_a_broken_rule_is_a_problem_and_writes_nothing(
    client: Client, writer: dict[str, str], database_url: str
) -> None:
    ana = await register(client, writer, "Ana")

    answer = await client.post(
        "/v1/recognitions", headers=writer, json={"from": ana, "to": ana, "kind": "kudos"}
    )

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["title"] == "Self recognition" or "recogni" in problem["title"].lower()
    assert ana in problem["detail"] and problem["status"] == 422
    assert count_rows(database_url) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": "Ana", "handle": ["x:y"]}, "handle"),
        ({"display_name": 42}, "display_name"),
        ({}, "display_name"),
    ],
)
async def test_bad_bodies_list_each_bad_field(
    client: Client, writer: dict[str, str], database_url: str, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/v1/members", json=body, headers=writer)

    assert answer.status_code == 400
    problem = answer.json()
    assert field in problem["detail"]
    assert problem["errors"], problem
    assert count_rows(database_url) == 0


async def test_malformed_json_is_a_400_problem(client: Client, writer: dict[str, str]) -> None:
    answer = await client.post(
        "/v1/members",
        content=b'{"display_name": ',
        headers={**writer, "content-type": "application/json"},
    )

    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_an_oversized_body_is_a_413(client: Client, writer: dict[str, str]) -> None:
    answer = await client.post(
        "/v1/contributions",
        headers=writer,
        json={
            "member": "twitter:@a",
            "kind": "answer",
            "space": "s",
            "body": "x" * (2 * 1024 * 1024),
        },
    )

    assert answer.status_code == 413
    assert answer.json()["status"] == 413


async def test_an_idempotency_key_retry_gets_the_first_answer(
    client: Client, writer: dict[str, str], database_url: str
) -> None:
    headers = {**writer, "Idempotency-Key": "register-ana-1"}
    first = await client.post("/v1/members", json={"display_name": "Ana"}, headers=headers)
    retry = await client.post("/v1/members", json={"display_name": "Ana"}, headers=headers)
    other = await client.post("/v1/members", json={"display_name": "Bob"}, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == {**first.json(), "replayed": True}
    assert other.status_code == 422
    assert "register-ana-1" in other.json()["detail"]
    assert count_rows(database_url) == 1


async def test_updating_with_a_stale_version_is_a_409_naming_the_current_one(
    client: Client, writer: dict[str, str], database_url: str
) -> None:
    ana = await register(client, writer, "Ana")
    fresh = await client.patch(
        f"/v1/members/{ana}", json={"bio": "hi"}, headers={**writer, "If-Match": '"1"'}
    )

    stale = await client.patch(
        f"/v1/members/{ana}", json={"bio": "again"}, headers={**writer, "If-Match": '"1"'}
    )

    assert fresh.status_code == 200, fresh.text
    assert stale.status_code == 409
    assert "at version 2" in stale.json()["detail"] and stale.headers["etag"] == '"2"'
    assert count_rows(database_url) == 2


async def test_a_batch_is_atomic_and_later_items_see_earlier_ones(
    client: Client, writer: dict[str, str], database_url: str
) -> None:
    good = [
        {"command": "register_member", "display_name": "Ana", "handles": ["github:ana"]},
        {"command": "register_member", "display_name": "Bob", "handles": ["github:bob"]},
        {"command": "give_recognition", "from": "github:ana", "to": "github:bob", "kind": "thanks"},
    ]
    broken = [
        *good[:2],
        {"command": "give_recognition", "from": "github:ana", "to": "github:ana", "kind": "thanks"},
    ]

    refused = await client.post("/v1/batch", json={"items": broken}, headers=writer)
    accepted = await client.post("/v1/batch", json={"items": good}, headers=writer)

    assert refused.status_code == 422 and "in command 2 of the batch" in refused.json()["detail"]
    assert accepted.status_code == 201 and accepted.json()["positions"] == [1, 2, 3]
    assert count_rows(database_url) == 3


async def test_writes_need_a_write_key(
    client: Client, reader: dict[str, str], database_url: str
) -> None:
    anonymous = await client.post("/v1/members", json={"display_name": "Ana"})
    read_only = await client.post("/v1/members", json={"display_name": "Ana"}, headers=reader)

    assert anonymous.status_code == 401 and "Bearer" in anonymous.json()["detail"]
    assert read_only.status_code == 403 and "write" in read_only.json()["detail"]
    assert count_rows(database_url) == 0
