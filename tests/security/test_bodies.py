"""Hostile request bodies, replayed against every operation that takes one: each is a 4xx
problem that writes nothing, echoes nothing, and never reaches PostgreSQL. They are sent
with an admin key, so no scope refuses them first."""

from __future__ import annotations

import json

import pytest

from services.api.bodies import MAX_DEPTH, too_deep
from services.store.ledger import Ledger
from tests.security.routes import Client, Operation, assert_problem, head, operations

pytestmark = pytest.mark.anyio

WITH_BODY = [op for op in operations() if op.has_body]
# Bodies each operation would accept, to show a single NUL is what refuses them.
GOOD = {
    "POST /v1/members": {"display_name": "Ana", "handles": ["github:ana"]},
    "POST /v1/contributions": {
        "member": "github:ana",
        "kind": "chat_answer",
        "space": "kaizenblog",
        "title": "T",
        "register_unknown": True,
    },
    "POST /v1/batch": {
        "items": [{"command": "register_member", "display_name": "Ana", "handles": ["github:ana"]}]
    },
}
SECRET = "s3cret-personal-text"


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_ops_with_bodies_are_all_covered() -> None:
    assert {"POST /v1/members", "POST /v1/batch", "PATCH /v1/members/{member_id}"} <= {
        op.id for op in WITH_BODY
    }


@pytest.mark.parametrize("op", WITH_BODY, ids=lambda op: op.id)
@pytest.mark.parametrize(
    "body",
    [
        deep(1_000),
        deep(100_000),
        b'{"display_name": ' + deep(1_000) + b"}",
        b'{"items": [' + b'{"a":' * 1_000 + b"1" + b"}" * 1_000 + b"]}",
    ],
    ids=["array-1000", "array-100000", "field-1000", "objects-1000"],
)
async def test_a_body_nested_too_deep_is_a_400(
    client: Client, admin: dict[str, str], ledger: Ledger, op: Operation, body: bytes
) -> None:
    before = await head(ledger)

    answer = await client.request(
        op.method, op.path(), content=body, headers={**admin, "Content-Type": "application/json"}
    )

    problem = assert_problem(answer, 400)
    assert "deep" in problem["detail"] or "Expected" in problem["detail"], problem
    assert await head(ledger) == before


async def test_the_documented_depth_is_the_one_refused() -> None:
    assert not too_deep(deep(MAX_DEPTH))
    assert too_deep(deep(MAX_DEPTH + 1))
    assert not too_deep(b'["' + b"[" * 100 + b'"]')  # brackets in a string are text
    assert not too_deep(b'["\\"' + b"[" * 100 + b'"]')
    mixed = b"1"
    for _ in range(MAX_DEPTH + 1):
        mixed = b'{"a": [], "b": [' + mixed + b", {}]}"
    assert too_deep(mixed)


@pytest.mark.parametrize("op", WITH_BODY, ids=lambda op: op.id)
@pytest.mark.parametrize(
    "text",
    ['{"display_name": "%s\\u0000"}', '{"reason": "%s\\u0000x"}', '{"%s\\u0000": "x"}'],
    ids=["value", "reason", "key"],
)
async def test_nul_anywhere_in_a_body_is_a_400_that_echoes_nothing(
    client: Client, admin: dict[str, str], ledger: Ledger, op: Operation, text: str
) -> None:
    before = await head(ledger)

    answer = await client.request(
        op.method,
        op.path(),
        content=(text % SECRET).encode(),
        headers={**admin, "Content-Type": "application/json"},
    )

    problem = assert_problem(answer, 400)
    assert SECRET not in answer.text
    assert "NUL" in problem["detail"]
    assert await head(ledger) == before


@pytest.mark.parametrize("op_id", sorted(GOOD))
async def test_a_nul_in_an_otherwise_good_write_writes_nothing(
    client: Client, admin: dict[str, str], ledger: Ledger, op_id: str
) -> None:
    op = next(op for op in WITH_BODY if op.id == op_id)
    good = json.dumps(GOOD[op_id])
    hostile = good.replace('"Ana"', '"An\\u0000a"').replace('"T"', '"T\\u0000"')
    assert hostile != good
    before = await head(ledger)

    refused = await client.request(
        op.method,
        op.path(),
        content=hostile,
        headers={**admin, "Content-Type": "application/json"},
    )

    assert_problem(refused, 400)
    assert await head(ledger) == before
    accepted = await client.request(
        op.method, op.path(), content=good, headers={**admin, "Content-Type": "application/json"}
    )
    assert accepted.status_code == 201, accepted.text


async def test_an_escaped_backslash_before_u0000_is_ordinary_text(
    client: Client, admin: dict[str, str]
) -> None:
    body = b'{"display_name": "Ana \\\\u0000 Bo"}'  # the text `Ana \u0000 Bo`, no NUL

    answer = await client.post("/v1/members", content=body, headers=admin)

    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "a\\udc00b"])
async def test_a_lone_surrogate_in_a_body_is_a_4xx(
    client: Client, admin: dict[str, str], ledger: Ledger, escape: str
) -> None:
    before = await head(ledger)

    answer = await client.post(
        "/v1/members", content=f'{{"display_name": "{escape}"}}'.encode(), headers=admin
    )

    assert_problem(answer)
    assert await head(ledger) == before
