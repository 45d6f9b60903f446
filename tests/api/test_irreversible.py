"""Irreversible operations need an admin key, and every API write records which key asked."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from services import keys
from services.keys import ApiKey

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
KEY_NAME = "Yann Ropars laptop"
"""A key name that is a person's: it must never reach a problem or an event."""


@pytest.fixture
async def write_key(database_url: str) -> tuple[ApiKey, dict[str, str]]:
    return await _key(database_url, "write")


@pytest.fixture
async def admin_key(database_url: str) -> tuple[ApiKey, dict[str, str]]:
    return await _key(database_url, "admin")


async def _key(database_url: str, scope: str) -> tuple[ApiKey, dict[str, str]]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        key, token = await keys.create_key(conn, KEY_NAME, scope)
    return key, {"Authorization": f"Bearer {token}"}


async def _register(client: Client, headers: dict[str, str], name: str, handle: str) -> str:
    answer = await client.post(
        "/v1/members", json={"display_name": name, "handles": [handle]}, headers=headers
    )
    assert answer.status_code == 201, answer.text
    member_id: str = answer.json()["id"]
    return member_id


async def _feed(client: Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await client.get("/v1/events", headers=headers)).json()[
        "events"
    ]
    return events


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/members/{yann}/erasure", {"reason": "asked"}),
        ("/v1/members/{yann}/merges", {"duplicate": "{old}"}),
        ("/v1/batch", {"items": [{"command": "forget_member", "member": "{yann}"}]}),
        (
            "/v1/batch",
            {
                "items": [
                    {"command": "register_member", "display_name": "Ana"},
                    {"command": "merge_members", "survivor": "{yann}", "duplicate": "{old}"},
                ]
            },
        ),
    ],
    ids=["erasure", "merge", "batch-forget", "batch-merge"],
)
async def test_a_write_key_is_refused_an_irreversible_operation_and_nothing_is_written(
    client: Client,
    write_key: tuple[ApiKey, dict[str, str]],
    path: str,
    body: dict[str, Any],
) -> None:
    key, writer = write_key
    yann = await _register(client, writer, "Yann Ropars", "twitter:@yannr")
    old = await _register(client, writer, "Yann R", "twitter:@yann_old")
    before = await _feed(client, writer)
    filled = _fill(body, yann=yann, old=old)

    refused = await client.post(path.format(yann=yann), json=filled, headers=writer)

    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    detail = refused.json()["detail"]
    assert "scope admin" in detail and f"cl_{key.prefix}" in detail
    assert KEY_NAME not in refused.text and "Yann" not in refused.text
    assert await _feed(client, writer) == before


async def test_an_admin_key_erases_and_the_event_names_the_key_not_a_person(
    client: Client,
    write_key: tuple[ApiKey, dict[str, str]],
    admin_key: tuple[ApiKey, dict[str, str]],
) -> None:
    _, writer = write_key
    key, admin = admin_key
    yann = await _register(client, writer, "Yann Ropars", "twitter:@yannr")

    erased = await client.post(
        f"/v1/members/{yann}/erasure", json={"reason": "asked"}, headers=admin
    )

    assert erased.status_code == 201, erased.text
    forgotten = next(e for e in await _feed(client, admin) if e["type"] == "MemberForgotten")
    assert forgotten["metadata"] == {"source": "api", "api_key_id": str(key.key_id)}


async def test_an_admin_key_may_merge_and_forget_in_a_batch(
    client: Client,
    write_key: tuple[ApiKey, dict[str, str]],
    admin_key: tuple[ApiKey, dict[str, str]],
) -> None:
    _, writer = write_key
    key, admin = admin_key
    yann = await _register(client, writer, "Yann Ropars", "twitter:@yannr")
    old = await _register(client, writer, "Yann R", "twitter:@yann_old")
    ana = await _register(client, writer, "Ana", "github:ana")
    items = [
        {"command": "merge_members", "survivor": yann, "duplicate": old},
        {"command": "forget_member", "member": ana},
    ]

    written = await client.post("/v1/batch", json={"items": items}, headers=admin)

    assert written.status_code == 201, written.text
    feed = await _feed(client, admin)
    done = [e for e in feed if e["type"] in {"MembersMerged", "MemberForgotten"}]
    assert [e["type"] for e in done] == ["MembersMerged", "MemberForgotten"]
    assert all(e["metadata"]["api_key_id"] == str(key.key_id) for e in done)


async def test_every_api_write_records_the_key_that_asked_and_nothing_else(
    client: Client, write_key: tuple[ApiKey, dict[str, str]]
) -> None:
    key, writer = write_key
    await _register(client, writer, "Yann Ropars", "twitter:@yannr")
    await client.post(
        "/v1/contributions",
        json={"member": "twitter:@yannr", "kind": "chat_answer", "space": "kaizenblog"},
        headers=writer,
    )

    feed = await _feed(client, writer)

    assert len(feed) == 2
    assert all(e["metadata"] == {"source": "api", "api_key_id": str(key.key_id)} for e in feed)


def _fill(value: Any, **ids: str) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, **ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, **ids) for k, v in value.items()}
    return value
