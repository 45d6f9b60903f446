"""Forged cursors on every endpoint that pages with one: a 400 naming `cursor`, never a 500;
and the cursors the API hands out still walk every page."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from domain.limits import MAX_POSITION
from services.api.app import create_app
from services.queries.cursors import (
    ActivityCursor,
    CountCursor,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
)
from tests.security.routes import Client, Operation, assert_problem, operations

pytestmark = pytest.mark.anyio


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[Client]:
    """A server with its projector running, so reads catch up to `min_position`."""
    async with AsyncTestClient(app=create_app(database_url, run_projector=True)) as client:
        yield client


PAGED = [op for op in operations() if op.takes("cursor")]


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


SOME_ID = str(uuid.uuid4())
FORGED = {
    "object-and-text": b64([{"a": 1}, "x"]),
    "two-numbers": b64([1, 5]),
    "array-and-id": b64([[1, 2], SOME_ID]),
    "three-items": b64([1, SOME_ID, 3]),
    "one-item": b64([SOME_ID]),
    "object": b64({"count": 1, "member_id": SOME_ID}),
    "null-and-id": b64([None, None]),
    "past-bigint": b64([MAX_POSITION + 1, SOME_ID]),
    "negative": b64([-1, SOME_ID]),
    "text-date": b64(["yesterday", SOME_ID]),
    "naive-date": b64(["2020-01-01T00:00:00", SOME_ID]),
    "deep": b64([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], SOME_ID]),
    "not-base64": "!!!",
    "not-json": base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "huge-number": b64([1]).replace("MV0", "") + "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",
}


def test_the_walk_finds_the_paged_endpoints_of_the_issue() -> None:
    assert {op.id for op in PAGED} >= {
        "GET /v1/members",
        "GET /v1/members/{member_id}/connections",
        "GET /v1/members/{member_id}/history",
    }


@pytest.mark.parametrize("op", PAGED, ids=lambda op: op.id)
@pytest.mark.parametrize("sort", ["activity", "contributions"])
async def test_a_forged_cursor_is_a_400_naming_the_parameter(
    client: Client,
    writer: dict[str, str],
    reader: dict[str, str],
    admin: dict[str, str],
    op: Operation,
    sort: str,
) -> None:
    made = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    member_id = made.json()["id"]

    for label, cursor in FORGED.items():
        path = op.path(member_id=member_id) + f"?cursor={cursor}&sort={sort}"
        if not op.takes("sort"):
            path = path.rsplit("&", 1)[0]

        answer = await client.get(path, headers=admin if op.needs_admin else reader)

        problem = assert_problem(answer, 400)
        assert "cursor" in problem["detail"], label
        assert cursor not in problem["detail"] or len(cursor) < 4, label


def test_a_cursor_decodes_only_as_the_type_it_was_written_as() -> None:
    member = uuid.uuid4()
    by_count = encode_cursor(CountCursor(count=7, member_id=member))

    assert decode_cursor(by_count, CountCursor) == CountCursor(count=7, member_id=member)
    with pytest.raises(InvalidCursor):
        decode_cursor(by_count, ActivityCursor)


@pytest.mark.parametrize("sort", ["activity", "contributions", "recognitions", "introductions"])
async def test_handed_out_cursors_walk_every_member_once(
    live: Client, writer: dict[str, str], reader: dict[str, str], sort: str
) -> None:
    client = live
    items = [{"command": "register_member", "display_name": f"m{i}"} for i in range(7)]
    written = await client.post("/v1/batch", json={"items": items}, headers=writer)
    position = written.json()["positions"][-1]

    seen: list[str] = []
    cursor = ""
    while True:
        query = f"?limit=3&sort={sort}&min_position={position}" + (
            f"&cursor={cursor}" if cursor else ""
        )
        page = (await client.get(f"/v1/members{query}", headers=reader)).json()
        seen += [member["id"] for member in page["members"]]
        if not (cursor := page["next_cursor"]):
            break

    assert sorted(seen) == sorted(written.json()["ids"])
