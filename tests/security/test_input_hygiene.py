"""Input hygiene over HTTP and in imports alike: one set of domain rules, so a hostile
name, handle, link, date or text is a 4xx that writes nothing, or a rejected import line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.importers.common import run_import
from services.importers.jsonl import jsonl_source
from services.store.ledger import Ledger
from tests.security.routes import Client, assert_problem, head

pytestmark = pytest.mark.anyio

SOON = (datetime.now(UTC) + timedelta(days=2)).isoformat()
HOSTILE_REGISTRATIONS = {
    "bidi-override": {"display_name": "Ana\u202eSTAEB"},
    "escape": {"display_name": "Ana\x1b[2J"},
    "newline": {"display_name": "Ana\nAdmin"},
    "invisible-only": {"display_name": "\u200b\u2063\u3164"},
    "confusable-handle": {"display_name": "Yann", "handles": ["discord:y\u0430nnr"]},
    "joined-before-1970": {"display_name": "Ana", "joined_at": "1969-12-31T23:59:59Z"},
    "joined-next-week": {"display_name": "Ana", "joined_at": SOON},
}


@pytest.mark.parametrize("body", HOSTILE_REGISTRATIONS.values(), ids=HOSTILE_REGISTRATIONS.keys())
async def test_a_hostile_registration_is_a_4xx_that_writes_nothing(
    client: Client, writer: dict[str, str], ledger: Ledger, body: dict[str, Any]
) -> None:
    before = await head(ledger)

    answer = await client.post("/v1/members", json=body, headers=writer)

    assert_problem(answer, 400, 422)
    assert await head(ledger) == before


async def test_a_handle_is_looked_up_after_nfkc(
    client: Client, writer: dict[str, str], reader: dict[str, str]
) -> None:
    await client.post(
        "/v1/members", json={"display_name": "Yann", "handles": ["discord:yannr"]}, headers=writer
    )
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in "yannr")

    taken = await client.post(
        "/v1/members",
        json={"display_name": "Eve", "handles": [f"discord:{full_width}"]},
        headers=writer,
    )

    assert_problem(taken, 409)


@pytest.mark.parametrize(
    "link", ["javascript:alert(document.cookie)", "data:text/html,<b>", "file:///etc/passwd"]
)
async def test_a_link_that_is_not_http_or_https_is_a_422_that_writes_nothing(
    client: Client, writer: dict[str, str], ledger: Ledger, link: str
) -> None:
    made = await client.post("/v1/members", json={"display_name": "Ana"}, headers=writer)
    before = await head(ledger)

    answer = await client.patch(
        f"/v1/members/{made.json()['id']}", json={"links": [link]}, headers=writer
    )

    problem = assert_problem(answer, 422)
    assert link not in problem["detail"]
    assert await head(ledger) == before


@pytest.mark.parametrize(
    "moment",
    ["1900-01-01T00:00:00Z", "0001-01-01T00:00:00Z", SOON],
    ids=["1900", "year-1", "two-days-ahead"],
)
@pytest.mark.parametrize("path", ["/v1/contributions", "/v1/batch"])
async def test_an_occurred_at_out_of_bounds_is_a_422_that_writes_nothing(
    client: Client, writer: dict[str, str], ledger: Ledger, moment: str, path: str
) -> None:
    contribution = {
        "member": "github:ana",
        "kind": "chat_answer",
        "space": "kaizenblog",
        "register_unknown": True,
        "occurred_at": moment,
    }
    body = (
        {"items": [{"command": "record_contribution", **contribution}]}
        if path == "/v1/batch"
        else contribution
    )
    before = await head(ledger)

    answer = await client.post(path, json=body, headers=writer)

    problem = assert_problem(answer, 422)
    assert "occurred_at" in problem["detail"]
    assert await head(ledger) == before


async def test_an_import_rejects_each_hostile_line_and_writes_the_good_ones(
    ledger: Ledger, tmp_path: Path
) -> None:
    good = {"command": "register_member", "display_name": "Ana", "handles": ["github:ana"]}
    hostile = [
        {"command": "register_member", "display_name": "Eve\u202e"},
        {"command": "register_member", "display_name": "Yann", "handles": ["discord:y\u0430nnr"]},
        {"command": "record_contribution", "member": "github:ana", "kind": "chat_answer",
         "space": "kaizenblog", "title": "a\u0000b"},
        {"command": "record_contribution", "member": "github:ana", "kind": "chat_answer",
         "space": "kaizenblog", "occurred_at": "1901-01-01T00:00:00Z"},
        {"command": "update_member", "member": "github:ana", "links": ["javascript:x"]},
    ]  # fmt: skip
    # Nested before the tag: the decoder skips it to find `command`, and would recurse.
    deep = '{"x": ' + "[" * 5_000 + "]" * 5_000 + ', "command": "register_member"}'
    lines = [json.dumps(good), *(json.dumps(line) for line in hostile), deep]
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    before = await head(ledger)

    summary = await run_import(ledger, jsonl_source(str(path)))

    assert summary.rejected == len(hostile) + 1, summary.rejections
    assert sorted(where for where, _ in summary.rejections) == [f"line {n}" for n in range(2, 8)]
    assert "too deep" in dict(summary.rejections)["line 7"]
    assert summary.events_written == 1
    assert await head(ledger) == before + 1
