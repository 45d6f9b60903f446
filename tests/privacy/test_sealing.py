"""Sealing a payload and opening it: no plaintext stored, boxes bound to their event."""

from __future__ import annotations

import base64
import json
import os

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.codec import decode_event, encode_payload
from domain.events import ContributionRecorded, MemberRegistered
from domain.ids import new_id
from services.privacy import sealing

ANA = new_id()
KEY = os.urandom(32)
CIPHERS = sealing.ciphers({ANA: KEY})


def sealed(event: object, event_id: object, key: bytes = KEY) -> bytes:
    payload = msgspec.json.decode(encode_payload(event))  # type: ignore[arg-type]
    sealing.seal(payload, event_id, type(event).__name__, ANA, AESGCM(key))  # type: ignore[arg-type]
    return msgspec.json.encode(payload)


def contribution() -> ContributionRecorded:
    return ContributionRecorded(
        contribution_id=new_id(), member_id=ANA, kind="chat_answer", space="kaizenblog",
        title="Connecting people", body="A1: listen first", url="https://example.org/a1",
        attributes={"question": "Q1"},
    )  # fmt: skip


def test_a_sealed_payload_holds_no_personal_text_and_keeps_ids_kinds_and_spaces() -> None:
    event, event_id = contribution(), new_id()
    stored = msgspec.json.decode(sealed(event, event_id))
    box = base64.b64decode(stored["sealed"].pop("box"))
    outside = msgspec.json.encode(stored)  # the box's base64 may spell "Q1" by chance
    for text in ("Connecting people", "listen first", "example.org", "Q1", "question"):
        assert text.encode() not in outside
        assert len(text) < 8 or text.encode() not in box
    for clear in (str(ANA), "chat_answer", "kaizenblog", str(event.contribution_id)):
        assert clear.encode() in outside


def test_opening_with_the_key_gives_back_the_event() -> None:
    event, event_id = contribution(), new_id()
    payload, erased = sealing.open_payload(
        sealed(event, event_id), event_id, "ContributionRecorded", CIPHERS
    )
    assert not erased
    assert decode_event("ContributionRecorded", 1, payload) == event
    spliced = sealing.open_for_fold(
        sealed(event, event_id), event_id, "ContributionRecorded", CIPHERS
    )
    assert decode_event("ContributionRecorded", 1, spliced) == event


def test_a_box_moved_to_another_event_does_not_open() -> None:
    event = contribution()
    stored = sealed(event, new_id())
    with pytest.raises(sealing.UnreadableBox):
        sealing.open_payload(stored, new_id(), "ContributionRecorded", CIPHERS)


def test_a_box_moved_between_two_events_of_one_member_does_not_open() -> None:
    first, second = new_id(), new_id()
    one = msgspec.json.decode(sealed(contribution(), first))
    two = msgspec.json.decode(sealed(contribution(), second))
    one["sealed"] = two["sealed"]
    with pytest.raises(sealing.UnreadableBox, match=str(first)):
        sealing.open_for_fold(msgspec.json.encode(one), first, "ContributionRecorded", CIPHERS)


def test_without_its_key_a_payload_reads_as_erased_never_as_ciphertext() -> None:
    event, event_id = (
        MemberRegistered(member_id=ANA, display_name="Ana", handles=("x:@ana",)),
        new_id(),
    )
    payload, erased = sealing.open_payload(
        sealed(event, event_id), event_id, "MemberRegistered", {}
    )
    assert erased
    assert payload == {
        "type": "MemberRegistered", "member_id": str(ANA), "joined_at": None,
        "display_name": None, "handles": None, "erased": True,
    }  # fmt: skip
    folded = sealing.open_for_fold(sealed(event, event_id), event_id, "MemberRegistered", {})
    assert decode_event("MemberRegistered", 1, folded) == MemberRegistered(
        member_id=ANA, display_name="", handles=()
    )


def test_handle_tags_are_keyed_digests_and_other_tags_stay() -> None:
    secret = os.urandom(32)
    digest = sealing.handle_digest(secret, "handle:twitter:casudi")
    assert digest.startswith("handle:") and "casudi" not in digest
    assert len(digest) == len("handle:") + 64
    assert sealing.handle_digest(secret, digest) == digest
    assert sealing.handle_digest(os.urandom(32), "handle:twitter:casudi") != digest
    assert sealing.handle_digest(secret, "member:x") == "member:x"


def jsonb_spelling(stored: bytes) -> bytes:
    """How PostgreSQL prints a jsonb object: keys by length then bytes, `": "` and `", "`."""
    payload = msgspec.json.decode(stored)
    ordered = dict(sorted(payload.items(), key=lambda item: (len(item[0]), item[0])))
    ordered["sealed"] = dict(sorted(ordered["sealed"].items()))
    return json.dumps(ordered, separators=(", ", ": ")).encode()


@pytest.mark.parametrize("keys", [CIPHERS, {}], ids=["opened", "erased"])
def test_readers_splice_the_same_payload_the_slow_way_decodes(keys: dict[str, AESGCM]) -> None:
    event, event_id = contribution(), new_id()
    stored = jsonb_spelling(sealed(event, event_id))
    box = sealing.peek_box("ContributionRecorded", stored)
    assert box is not None

    spliced, erased = sealing.open_for_reader(stored, box, event_id, "ContributionRecorded", keys)

    assert b"sealed" not in spliced
    slow = sealing.open_payload(stored, event_id, "ContributionRecorded", keys)
    assert (msgspec.json.decode(spliced), erased) == slow


@pytest.mark.parametrize("keys", [CIPHERS, {}], ids=["opened", "erased"])
def test_a_box_the_database_cut_out_opens_as_the_slow_way_decodes(
    keys: dict[str, AESGCM],
) -> None:
    event, event_id = contribution(), new_id()
    stored = sealed(event, event_id)
    rest = msgspec.json.decode(stored)
    box = rest.pop("sealed")

    opened, erased = sealing.open_cut(
        msgspec.json.encode(rest), box["key"], box["box"], event_id, "ContributionRecorded", keys
    )

    slow = sealing.open_payload(stored, event_id, "ContributionRecorded", keys)
    assert (msgspec.json.decode(opened), erased) == slow


def test_a_cut_sealed_field_that_is_not_a_box_is_refused_never_shown() -> None:
    event_id = new_id()
    with pytest.raises(sealing.UnreadableBox, match=str(event_id)):
        sealing.open_cut(b'{"kind": "talk"}', str(ANA), None, event_id, "ContributionRecorded", {})
    with pytest.raises(sealing.UnreadableBox, match=str(event_id)):
        sealing.open_cut(b"{}", str(ANA), "bm90IGEgYm94", event_id, "ContributionRecorded", CIPHERS)


def test_a_box_spelled_otherwise_is_opened_the_slow_way_never_shown() -> None:
    event, event_id = contribution(), new_id()
    stored = sealed(event, event_id)  # msgspec's spelling, not jsonb's: no splice
    box = sealing.peek_box("ContributionRecorded", stored)
    assert box is not None

    opened, erased = sealing.open_for_reader(stored, box, event_id, "ContributionRecorded", CIPHERS)

    assert b"sealed" not in opened and not erased
    assert decode_event("ContributionRecorded", 1, opened) == event


def test_member_ids_are_looked_up_in_one_spelling() -> None:
    assert sealing.canonical(str(ANA)) == str(ANA)
    assert sealing.canonical(str(ANA).upper()) == str(ANA)
    assert sealing.canonical(ANA.hex) == str(ANA)
