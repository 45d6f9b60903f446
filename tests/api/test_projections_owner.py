"""Who runs the projector (`host:pid`) is for admins: other keys see the state without it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from services.projector import builds

pytestmark = pytest.mark.anyio

OWNER = "projector-host:4242"


@pytest.fixture
async def leased(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await builds.take_lease(conn, "member_profiles", OWNER) is not None


@pytest.mark.usefixtures("leased")
async def test_an_admin_key_sees_the_projectors_host_and_pid(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    listed = (await client.get("/v1/projections", headers=admin)).json()

    owners = {p["name"]: p["owner"] for p in listed}
    assert owners["member_profiles"] == OWNER


@pytest.mark.usefixtures("leased")
async def test_read_and_write_keys_see_the_state_without_the_owner(
    client: AsyncTestClient[Any], reader: dict[str, str], writer: dict[str, str]
) -> None:
    for headers in (reader, writer):
        answer = await client.get("/v1/projections", headers=headers)

        assert answer.status_code == 200
        listed = answer.json()
        assert {p["name"] for p in listed} >= {"member_profiles", "connections"}
        assert all(p["owner"] is None for p in listed)
        assert all(p["state"] and p["checkpoint"] >= 0 for p in listed)
        assert OWNER not in answer.text
