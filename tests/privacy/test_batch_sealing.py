"""Sealing a whole batch on append: every box its own nonce, every member their own key,
payloads sealed as they are spelled, and rows sealed the earlier way still open."""

from __future__ import annotations

import base64
import gc
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from domain.events import ContributionRecorded, MemberRegistered
from domain.ids import new_id
from services.privacy import sealing
from services.privacy.keyring import Keyring
from services.store import appending
from services.store.ledger import Ledger
from services.store.records import NewEvent, SealedEvent
from tests.privacy.conftest import as_new_event

pytestmark = pytest.mark.anyio

MEMBERS = 150


def stored_payloads(database_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT data FROM events ORDER BY position").fetchall()
    return [row[0] for row in rows]


async def test_a_batch_of_many_new_members_seals_each_under_their_own_key_with_fresh_nonces(
    ledger: Ledger, database_url: str
) -> None:
    members = [new_id() for _ in range(MEMBERS)]
    events = [
        MemberRegistered(member_id=m, display_name=f"Ilse Varga {i}", handles=(f"x:ilse{i}",))
        for i, m in enumerate(members)
    ] + [
        ContributionRecorded(
            contribution_id=new_id(), member_id=m, kind="talk", space="meetup", title=f"Ode {i}"
        )
        for i, m in enumerate(members)
    ]

    await ledger.append([as_new_event(event) for event in events])

    stored = stored_payloads(database_url)
    boxes = [base64.b64decode(payload["sealed"]["box"]) for payload in stored]
    assert len({box[: sealing.NONCE] for box in boxes}) == 2 * MEMBERS
    assert [payload["sealed"]["key"] for payload in stored] == [str(m) for m in members] * 2
    # Each searched text holds a character base64 never writes: a box cannot spell it by
    # chance ("ilse" alone, case folded, turned up in one run's boxes).
    written = json.dumps(stored).lower()
    assert "ilse varga" not in written and "x:ilse" not in written and "ode " not in written
    with psycopg.connect(database_url) as conn:
        keys = conn.execute("SELECT count(*) FROM member_keys").fetchone()
    assert keys == (MEMBERS,)
    feed = [record.decode() for record in await ledger.read_feed(limit=2 * MEMBERS)]
    assert feed == events


async def test_a_payload_is_sealed_as_spelled_and_reads_back_whole(
    ledger: Ledger, database_url: str
) -> None:
    """Spacing, nested values, a null and a field this code does not know: the box holds
    the personal fields as written, the rest stays clear, and readers give it all back."""
    member = new_id()
    ids = f'"contribution_id": "{new_id()}", "member_id": "{member}"'
    written = (
        '{"type": "ContributionRecorded", ' + ids + ', "kind": "talk", "space": "meetup",'
        ' "title": "Quiet  hours", "body": null, "attributes": {"slides": [1, 2], "room": "B"},'
        ' "from_the_future": 3}'
    )
    event = NewEvent(
        event_id=new_id(),
        type="ContributionRecorded",
        data=msgspec.Raw(written.encode()),
        stream=f"contribution-{member}",
        occurred_at=datetime.now(UTC),
    )

    await ledger.append([event])

    (stored,) = stored_payloads(database_url)
    assert set(stored) == {
        "type", "contribution_id", "member_id", "kind", "space", "from_the_future", "sealed"
    }  # fmt: skip
    (read,) = await ledger.read_feed()
    assert msgspec.json.decode(read.data) == json.loads(written)


async def test_a_row_sealed_the_earlier_way_opens_as_one_sealed_now(
    ledger: Ledger, keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    """Rows sealed before (and by migration 0007) hold the personal fields decoded and
    encoded again; the store now boxes their text as written. Both open alike."""
    member = new_id()
    contribution = ContributionRecorded(
        contribution_id=new_id(), member_id=member, kind="talk", space="meetup",
        title="Moderation notes", body="one", attributes={"room": "B"},
    )  # fmt: skip
    await ledger.append([as_new_event(contribution)])
    key = (await keyring.keys_of(conn, [str(member)], create=False))[str(member)]
    earlier = as_new_event(contribution)
    payload = msgspec.json.decode(earlier.data)
    sealing.seal(payload, earlier.event_id, earlier.type, member, AESGCM(key))
    sealed = msgspec.structs.replace(earlier, data=msgspec.Raw(msgspec.json.encode(payload)))
    await appending.call_append(conn, appending.parameters([sealed], None, None, None, None))

    now, before = await ledger.read_feed()
    assert not now.erased and not before.erased
    assert msgspec.json.decode(before.data) == msgspec.json.decode(now.data)
    assert before.decode() == now.decode() == contribution


async def test_an_erased_members_cipher_is_no_longer_kept(
    keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    member = str(new_id())
    await keyring.keys_of(conn, [member], create=True)
    keys = await keyring.keys_of(conn, [member], create=False)  # committed now: cached
    keyring.cipher(member, keys[member])
    assert set(keyring.cached_ciphers([member])[0]) == {member}

    keyring.forget([UUID(member)])

    assert keyring.cached_ciphers([member]) == ({}, [member])


async def test_a_payload_of_known_fields_is_split_in_one_pass_and_reads_back_whole(
    ledger: Ledger, database_url: str
) -> None:
    """No field this code does not know: the payload is decoded once into its fields'
    text (sealing.SPLITS). An absent field stays absent, clear fields stay clear."""
    member = new_id()
    ids = f'"contribution_id": "{new_id()}", "member_id": "{member}"'
    written = (
        '{"type": "ContributionRecorded", ' + ids + ', "kind": "talk", "space": "meetup",'
        ' "title": "Quiet  hours", "body": null, "attributes": {"slides": [1, 2]}}'
    )
    event = NewEvent(
        event_id=new_id(),
        type="ContributionRecorded",
        data=msgspec.Raw(written.encode()),
        stream=f"contribution-{member}",
        occurred_at=datetime.now(UTC),
    )

    await ledger.append([event])

    (stored,) = stored_payloads(database_url)
    assert set(stored) == {"type", "contribution_id", "member_id", "kind", "space", "sealed"}
    assert stored["sealed"]["key"] == str(member)
    assert "Quiet" not in json.dumps(stored)
    (read,) = await ledger.read_feed()
    assert msgspec.json.decode(read.data) == json.loads(written)


async def test_a_sealed_batch_leaves_nothing_for_the_garbage_collector_to_track(
    ledger: Ledger, conn: AsyncConnection[Any]
) -> None:
    """What a batch holds while it waits for the database is untracked: tracked objects
    that outlive a collection are promoted, and enough of them set off full collections
    of the whole heap in the middle of a batch import."""
    member = new_id()
    events = [
        as_new_event(MemberRegistered(member_id=member, display_name="Ilse", handles=("x:i",))),
        as_new_event(
            ContributionRecorded(
                contribution_id=new_id(), member_id=member, kind="talk", space="m", title="Ode"
            )
        ),
    ]

    sealed, _ = await ledger.sealer.seal(conn, events, drafting=True)

    assert all(isinstance(event, SealedEvent) for event in sealed)
    assert not any(gc.is_tracked(event) or gc.is_tracked(event.data) for event in sealed)
    assert not any(gc.is_tracked(event.data.sealed) for event in sealed)


async def test_a_member_whose_key_is_cached_gets_a_kept_cipher_without_a_key_lookup(
    keyring: Keyring, conn: AsyncConnection[Any]
) -> None:
    member, unknown = str(new_id()), str(new_id())
    await keyring.keys_of(conn, [member], create=True)
    keys = await keyring.keys_of(conn, [member], create=False)  # committed now: cached
    keyring.forget_all()
    keyring._remember(member, keys[member])  # the key cached, its cipher not kept

    found, others = keyring.cached_ciphers([member, unknown])

    assert set(found) == {member} and others == [unknown]
    nonce = b"\0" * sealing.NONCE
    assert AESGCM(keys[member]).decrypt(nonce, found[member].encrypt(nonce, b"x", b""), b"") == b"x"
    assert keyring.cached_ciphers([member])[0][member] is found[member]


async def test_the_bench_switch_appends_in_clear_and_the_same_code_reads_it(
    pool: AsyncConnectionPool, keyring: Keyring, database_url: str
) -> None:
    """`Ledger(sealing=False)` is the benchmarks' "before encryption" side: personal
    fields stay in clear, handle tags are still hashed, and every reader works alike."""
    member = new_id()
    events = [
        MemberRegistered(member_id=member, display_name="Ilse Varga", handles=("x:ilse",)),
        ContributionRecorded(
            contribution_id=new_id(), member_id=member, kind="talk", space="meetup", title="Ode"
        ),
    ]
    clear = Ledger(pool, keyring, sealing=False)

    await clear.append([as_new_event(event) for event in events])

    stored = stored_payloads(database_url)
    assert [payload.get("sealed") for payload in stored] == [None, None]
    assert stored[0]["display_name"] == "Ilse Varga" and stored[1]["title"] == "Ode"
    with psycopg.connect(database_url) as conn:
        tags = [row[0] for row in conn.execute("SELECT tag FROM event_tags").fetchall()]
    assert not [tag for tag in tags if "ilse" in tag]
    assert [record.decode() for record in await Ledger(pool, keyring).read_feed()] == events
    assert len(await Ledger(pool, keyring).read_tagged("handle:twitter:ilse")) == 1
