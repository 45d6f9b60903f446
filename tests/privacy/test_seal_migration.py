"""Revision 0007 seals a ledger written before it: no plaintext left, nothing else moved."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from domain.codec import encode_payload
from domain.events import (
    ContributionRecorded,
    Event,
    HandleLinked,
    IntroductionMade,
    MemberForgotten,
    MemberProfileUpdated,
    MemberRegistered,
    RecognitionGiven,
    stream_of,
    tags_of,
    type_name,
)
from domain.ids import new_id
from domain.personal import sealed_fields
from services import bootstrap, migrate
from services.store import appending
from services.store.ledger import Ledger
from services.store.records import NewEvent, RecordedEvent
from services.store.sealed import Sealer

ANA, BO, CY = new_id(), new_id(), new_id()
SECRETS = [
    "Ana Lovelace-Quill",
    "anaquill",
    "ana-quill-dev",
    "Bo Brightwater",
    "bobright",
    "Cy Forgetme",
    "cyforget",
    "Writes about welcoming",
    "https://ana.example",
    "How to host a quiet chat",
    "Start with one question",
    "meet over tea, both of you",
    "for the kind words",
    "posted by Cy, who asked to be forgotten",
]
HISTORY: list[Event] = [
    MemberRegistered(member_id=ANA, display_name=SECRETS[0], handles=("twitter:@AnaQuill",)),
    MemberRegistered(member_id=BO, display_name=SECRETS[3], handles=("twitter:@bobright",)),
    MemberRegistered(member_id=CY, display_name=SECRETS[5], handles=("github:cyforget",)),
    HandleLinked(member_id=ANA, handle="github:ana-quill-dev"),
    MemberProfileUpdated(member_id=ANA, bio=SECRETS[7], links=(SECRETS[8],)),
    ContributionRecorded(
        contribution_id=new_id(),
        member_id=ANA,
        kind="article",
        space="kaizenblog",
        title=SECRETS[9],
        body=SECRETS[10],
        attributes={"question": "Q1"},
    ),
    ContributionRecorded(
        contribution_id=new_id(),
        member_id=CY,
        kind="chat_answer",
        space="kaizenblog",
        body=SECRETS[13],
    ),
    IntroductionMade(
        introduction_id=new_id(), introducer_id=BO, introduced_ids=(ANA, CY), note=SECRETS[11]
    ),
    RecognitionGiven(
        recognition_id=new_id(), from_id=BO, to_id=ANA, kind="thanks", reason=SECRETS[12]
    ),
    MemberForgotten(member_id=CY),
]
ROWS = "SELECT position, event_id, type, stream, stream_version, data, tags FROM events ORDER BY 1"


def ledger_at_0005(url: str) -> None:
    migrate.upgrade(url, "0005_readable_append")
    events = [
        NewEvent(
            event_id=new_id(),
            type=type_name(e),
            data=msgspec.Raw(encode_payload(e)),
            stream=stream_of(e),
            tags=tags_of(e),
            occurred_at=datetime.now(UTC),
        )
        for e in HISTORY
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(appending._APPEND, appending.parameters(events, None, None, None, None))


def raw(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return (
            conn.execute(ROWS).fetchall(),
            conn.execute("SELECT tag, position FROM event_tags ORDER BY 2, 1").fetchall(),
        )


async def read_opened(url: str) -> tuple[list[RecordedEvent], Sealer]:
    async with (
        bootstrap.keyring(url) as keyring,
        AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool,
    ):
        ledger = Ledger(pool, keyring)
        return await ledger.read_feed(after=0), ledger.sealer


def test_upgrading_seals_every_personal_field_and_keeps_ids_positions_and_order(
    empty_database_url: str,
) -> None:
    url = empty_database_url
    ledger_at_0005(url)
    before, tags_before = raw(url)
    assert all(s.lower() in str(before + tags_before).lower() for s in SECRETS)

    migrate.upgrade(url)
    after, tags_after = raw(url)

    stored = str(after + tags_after).lower()
    assert [s for s in SECRETS if s.lower() in stored] == []
    assert [row[:5] for row in after] == [row[:5] for row in before]
    opened, sealer = asyncio.run(read_opened(url))
    assert [list(r.tags) for r in opened] == [sealer.tags(row[6]) for row in before]
    assert tags_after == [(sealer.tag(tag), position) for tag, position in tags_before]
    for record, row in zip(opened, before, strict=True):
        data, original = msgspec.json.decode(record.data), row[5]
        if str(CY) in (original.get("member_id"),) or type_name_of(original) == "MemberForgotten":
            assert data == {**original, **dict.fromkeys(sealed_fields(row[2])), "erased": True}
        else:
            assert data == original, row[2]


def type_name_of(payload: dict[str, Any]) -> str:
    return str(payload["type"])


def test_downgrading_opens_what_can_be_opened_again(empty_database_url: str) -> None:
    url = empty_database_url
    ledger_at_0005(url)
    before, tags_before = raw(url)
    migrate.upgrade(url)

    migrate.downgrade(url, "0006_member_keys")
    again, tags_again = raw(url)

    kept = [i for i, row in enumerate(before) if str(CY) not in str(row[5])]
    assert [again[i] for i in kept] == [before[i] for i in kept]
    plain = {t for t in tags_before if "cyforget" not in t[0]}
    assert plain <= set(tags_again)
    assert "cyforget" not in str(again + tags_again)
