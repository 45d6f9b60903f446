"""Idempotency-Keys belong to the API key that sent them, and are forgotten after retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from services import keys
from services.api.housekeeping import purge_once
from tests.store.conftest import count_rows

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]


async def bearer(database_url: str, name: str) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        _, token = await keys.create_key(conn, name, "write")
    return {"Authorization": f"Bearer {token}"}


async def test_two_tools_sending_the_same_key_with_different_bodies_both_write(
    client: Client, database_url: str
) -> None:
    tool_a, tool_b = await bearer(database_url, "tool a"), await bearer(database_url, "tool b")

    first = await client.post(
        "/v1/members", json={"display_name": "Ana"}, headers={**tool_a, "Idempotency-Key": "1"}
    )
    second = await client.post(
        "/v1/members", json={"display_name": "Bo"}, headers={**tool_b, "Idempotency-Key": "1"}
    )

    assert first.status_code == 201 and second.status_code == 201, second.text
    assert second.json()["replayed"] is False
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["positions"] != first.json()["positions"]
    assert count_rows(database_url, "events") == 2


async def test_a_tool_sending_another_tools_key_and_body_writes_its_own_member(
    client: Client, database_url: str
) -> None:
    tool_a, tool_b = await bearer(database_url, "tool a"), await bearer(database_url, "tool b")
    body = {"display_name": "Ana"}

    first = await client.post("/v1/members", json=body, headers={**tool_a, "Idempotency-Key": "k"})
    second = await client.post("/v1/members", json=body, headers={**tool_b, "Idempotency-Key": "k"})

    assert second.status_code == 201, second.text
    assert second.json()["replayed"] is False and second.json()["id"] != first.json()["id"]


async def test_the_same_api_key_retrying_gets_the_first_answer(
    client: Client, database_url: str
) -> None:
    tool = {**await bearer(database_url, "tool"), "Idempotency-Key": "retry-1"}

    first = await client.post("/v1/members", json={"display_name": "Ana"}, headers=tool)
    again = await client.post("/v1/members", json={"display_name": "Ana"}, headers=tool)

    assert again.status_code == 201
    assert again.json() == {**first.json(), "replayed": True}
    assert count_rows(database_url, "events") == 1


async def test_reusing_a_key_for_another_body_names_only_the_callers_key(
    client: Client, database_url: str
) -> None:
    tool = {**await bearer(database_url, "tool"), "Idempotency-Key": "mine-1"}
    await client.post("/v1/members", json={"display_name": "Ana"}, headers=tool)

    reused = await client.post("/v1/members", json={"display_name": "Bo"}, headers=tool)

    assert reused.status_code == 422, reused.text
    detail = reused.json()["detail"]
    assert "'mine-1'" in detail and "api:" not in detail


async def test_keys_past_the_retention_are_purged_and_a_late_retry_is_a_new_request(
    app: Litestar, client: Client, database_url: str
) -> None:
    tool = await bearer(database_url, "tool")
    old = {**tool, "Idempotency-Key": "old"}
    await client.post("/v1/members", json={"display_name": "Ana"}, headers=old)
    await client.post(
        "/v1/members", json={"display_name": "Bo"}, headers={**tool, "Idempotency-Key": "new"}
    )
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '8 days' "
            "WHERE key LIKE '%%:old'"
        )
        await conn.execute(
            "INSERT INTO idempotency_keys (key, fingerprint, response, created_at) "
            "VALUES ('import:jsonl:chunk-1', 'f', '{}', now() - interval '30 days')"
        )

    purged = await purge_once(app.state.pool, timedelta(days=7))
    late = await client.post("/v1/members", json={"display_name": "Ana"}, headers=old)

    assert purged == 1
    # Left: the recent key, and the importer's, which makes re-running an import a no-op.
    assert count_rows(database_url, "idempotency_keys") == 2
    # Not replayed any more: judged as new, it registers the member the key's ids name
    # a second time, which the rules refuse.
    assert late.status_code == 409, late.text
    assert count_rows(database_url, "events") == 2
