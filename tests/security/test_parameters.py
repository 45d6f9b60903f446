"""Hostile numbers and NULs in query, path and header values, replayed against every route
that takes them: a 400 problem naming the parameter, never a 500 or a database error."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from domain.limits import MAX_POSITION
from services.api.numbers import whole_number
from services.store.ledger import Ledger
from tests.security.routes import (
    Client,
    Operation,
    assert_problem,
    head,
    integer_params,
    operations,
    text_params,
)

pytestmark = pytest.mark.anyio

HOSTILE_NUMBERS = {
    "superscript-two": "²",
    "arabic-indic-three": "\u0663",
    "fullwidth-seven": "\uff17",
    "5000-digits": "9" * 5_000,
    "past-bigint": str(MAX_POSITION + 1),
    "30-digits": "9" * 30,
    "negative": "-1",
    "float": "1.5",
    "underscored": "1_000",
}
READS_WAITING = [op for op in operations() if op.takes("min_position")]
SECRET = "s3cret"


def auth(op: Operation, reader: dict[str, str], admin: dict[str, str]) -> dict[str, str]:
    return reader if op.method == "GET" and not op.needs_admin else admin


def test_the_walk_finds_the_parameters_named_in_the_issue() -> None:
    found = {(op.id, name) for op, name in integer_params()}
    assert ("GET /v1/events", "after") in found
    assert ("GET /v1/members", "min_position") in found
    assert ("GET /v1/members/{member_id}/history", "cursor") in found
    assert len(READS_WAITING) >= 5


@pytest.mark.parametrize(
    ("op", "name"), integer_params(), ids=[f"{op.id}:{name}" for op, name in integer_params()]
)
async def test_a_hostile_whole_number_in_any_query_parameter_is_a_400_naming_it(
    client: Client, reader: dict[str, str], admin: dict[str, str], op: Operation, name: str
) -> None:
    for label, value in HOSTILE_NUMBERS.items():
        answer = await client.request(
            op.method, f"{op.path()}?{name}={quote(value)}", headers=auth(op, reader, admin)
        )

        problem = assert_problem(answer, 400)
        assert name in problem["detail"], label


@pytest.mark.parametrize("op", READS_WAITING, ids=lambda op: op.id)
async def test_a_hostile_ledger_min_position_header_is_a_400_naming_it(
    client: Client, reader: dict[str, str], op: Operation
) -> None:
    for label, value in HOSTILE_NUMBERS.items():
        headers: dict[str, Any] = {**reader, "Ledger-Min-Position": value.encode()}

        answer = await client.request(op.method, op.path(), headers=headers)

        problem = assert_problem(answer, 400)
        assert "Ledger-Min-Position" in problem["detail"], label
        assert value not in problem["detail"], label


@pytest.mark.parametrize("value", [*HOSTILE_NUMBERS.values(), 'W/"²"', '"٣"'])
async def test_a_hostile_if_match_is_a_400_that_writes_nothing(
    client: Client, writer: dict[str, str], ledger: Ledger, value: str
) -> None:
    made = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    before = await head(ledger)

    answer = await client.patch(
        f"/v1/members/{made.json()['id']}",
        json={"bio": "new"},
        headers={**writer, "If-Match": value.encode()},  # type: ignore[dict-item]
    )

    problem = assert_problem(answer, 400)
    assert "if-match" in problem["detail"].lower().replace("_", "-")
    assert await head(ledger) == before


@pytest.mark.parametrize("value", [10**30, MAX_POSITION + 1, -1])
async def test_an_expected_version_past_a_bigint_is_a_400(
    client: Client, writer: dict[str, str], ledger: Ledger, value: int
) -> None:
    made = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    before = await head(ledger)

    answer = await client.patch(
        f"/v1/members/{made.json()['id']}",
        json={"bio": "new", "expected_version": value},
        headers=writer,
    )

    assert_problem(answer, 400)
    assert await head(ledger) == before


@pytest.mark.parametrize(
    ("text", "number"), [("0", 0), (" 42 ", 42), (str(MAX_POSITION), MAX_POSITION), ("007", 7)]
)
def test_ascii_whole_numbers_up_to_a_bigint_are_read(text: str, number: int) -> None:
    assert whole_number(text, "x") == number


@pytest.mark.parametrize(
    ("op", "param"), text_params(), ids=[f"{op.id}:{p['name']}" for op, p in text_params()]
)
async def test_a_nul_in_any_query_or_path_parameter_is_a_400_that_echoes_nothing(
    client: Client,
    reader: dict[str, str],
    admin: dict[str, str],
    ledger: Ledger,
    op: Operation,
    param: dict[str, Any],
) -> None:
    hostile = quote(f"{SECRET}\x00")
    if param["in"] == "path":
        path = op.path(**{param["name"]: hostile})
    else:
        path = f"{op.path()}?{param['name']}={hostile}"
    before = await head(ledger)

    answer = await client.request(op.method, path, headers=auth(op, reader, admin))

    problem = assert_problem(answer, 400)
    assert "NUL" in problem["detail"]
    assert SECRET not in answer.text
    assert await head(ledger) == before


@pytest.mark.parametrize("header", ["Idempotency-Key", "If-Match", "Ledger-Min-Position", "X-Any"])
async def test_a_nul_in_a_header_is_a_400(
    client: Client, writer: dict[str, str], ledger: Ledger, header: str
) -> None:
    before = await head(ledger)

    answer = await client.post(
        "/v1/members",
        json={"display_name": "Ana"},
        headers={**writer, header: b"1\x002"},  # type: ignore[dict-item]
    )

    problem = assert_problem(answer, 400)
    assert "NUL" in problem["detail"]
    assert await head(ledger) == before


ODD_TEXT = {
    "lone-surrogate": "%ED%A0%80",
    "invalid-utf8": "%FF%FE",
    "emoji": "%F0%9F%98%80",
    "long": "x" * 5_000,
    "sql": "'%20OR%201=1%20--",
    "traversal": "..%2F..%2Fetc%2Fpasswd",
    "bidi": "%E2%80%AE",
    "empty": "",
}


@pytest.mark.parametrize(
    ("op", "param"), text_params(), ids=[f"{op.id}:{p['name']}" for op, p in text_params()]
)
async def test_odd_text_in_any_query_or_path_parameter_is_never_a_500(
    client: Client,
    reader: dict[str, str],
    admin: dict[str, str],
    ledger: Ledger,
    op: Operation,
    param: dict[str, Any],
) -> None:
    before = await head(ledger)
    for label, value in ODD_TEXT.items():
        if param["in"] == "path":
            if not value:
                continue
            path = op.path(**{param["name"]: value})
        else:
            path = f"{op.path()}?{param['name']}={value}"

        answer = await client.request(op.method, path, headers=auth(op, reader, admin))

        assert answer.status_code < 500, (label, answer.status_code, answer.text[:300])
    assert await head(ledger) == before
