"""A server still holding the master key from before a rotation answers 503, not 500."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from services import bootstrap
from services.privacy.master import new_master_key
from services.privacy.rotation import rotate_master
from services.settings import load_settings

pytestmark = pytest.mark.anyio


def head(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
    assert row is not None
    return int(row[0])


async def test_a_write_after_the_master_key_was_rotated_is_a_503_that_writes_nothing(
    client: AsyncTestClient[Any], writer: dict[str, str], database_url: str
) -> None:
    before = head(database_url)
    async with await psycopg.AsyncConnection.connect(database_url) as owner:
        await rotate_master(owner, bootstrap.master_key(load_settings()), new_master_key())

    answer = await client.post(
        "/v1/members", json={"display_name": "Newcomer", "handles": []}, headers=writer
    )

    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "restart" in answer.json()["detail"] and "Newcomer" not in answer.text
    assert answer.headers["retry-after"]
    assert head(database_url) == before
