"""Sealing an event's personal fields under one member's data key, and opening them again.

A stored payload keeps its clear fields and holds the personal ones (domain/personal.py)
in one box: `"sealed": {"key": "<member id>", "box": "<base64 nonce + ciphertext>"}`.
The box is AES-256-GCM over the JSON object of those fields, with a fresh 12-byte nonce,
and the event's id and type as associated data: a box moved to another event, or edited,
fails to open. One box per event (not per field) because every personal field of an
event is under the same member's key: the field names are inside the authenticated
plaintext, and appends and folds pay for one cipher call per event, not four.

Opened without its key (the member was erased), a payload reads in one shape: each
personal field `null` and `"erased": true`; a fold sees the fields' blanks instead
(`domain.personal.BLANKS`), so erased events still fold.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.events import EVENT_TYPES
from domain.personal import BLANKS, PERSONAL, sealed_fields

SEALED = "sealed"
ERASED = "erased"
HANDLE_TAG = "handle:"
NONCE = 12

_encoder = msgspec.json.Encoder()
_blank_json = {name: _encoder.encode(blanks)[1:-1] for name, blanks in BLANKS.items() if blanks}
_erased_json = {
    name: _encoder.encode({**dict.fromkeys(personal.sealed), ERASED: True})[1:-1]
    for name, personal in PERSONAL.items()
}


class Box(msgspec.Struct, frozen=True, gc=False):
    key: str
    """The sealing member's id, as text: keys are looked up by it (`canonical`)."""
    box: bytes
    """The nonce and ciphertext, decoded from the stored base64 by msgspec as it peeks."""


class _TextBox(msgspec.Struct, frozen=True, gc=False):
    """A box whose text is not valid base64: peeked as it is, for `unbox` to refuse."""

    key: str
    box: str


class _Peek(msgspec.Struct, gc=False):
    """Just the box of a stored payload: the rest is skipped, not parsed."""

    sealed: Box | None = None


class _PeekText(msgspec.Struct, gc=False):
    sealed: _TextBox | None = None


PeekedBox = Box | _TextBox
"""What `peek_box` finds: a box, or (not base64) its text for `unbox` to refuse."""

_peek = msgspec.json.Decoder(_Peek)
_peek_text = msgspec.json.Decoder(_PeekText)

SEALED_TYPES = frozenset(name for name, personal in PERSONAL.items() if personal.sealed)
"""Only these types are ever sealed: a reader need not look into the others' payloads."""


class UnreadableBox(Exception):
    """A box that its key does not open: edited, or moved from another event."""

    def __init__(self, event_id: UUID) -> None:
        super().__init__(f"the personal fields of event {event_id} fail authentication")
        self.event_id = event_id


SEALING: dict[str, tuple[str, tuple[str, ...]]] = {
    name: (personal.owner, personal.sealed)
    for name, personal in PERSONAL.items()
    if personal.sealed
}
"""Per sealed type, its owner field and its sealed fields: one lookup per event on appends."""

TYPE_BYTES = {name: name.encode() for name in PERSONAL}
"""Each type's name as the associated data spells it."""


def _fields_struct(type_name: str, names: tuple[str, ...]) -> type[msgspec.Struct]:
    """A struct of just the personal fields, each kept as its JSON text (`Raw`) and left
    out when absent: decoding a payload into it and encoding that gives the box's
    plaintext in two C calls, the other fields skipped unparsed."""
    return msgspec.defstruct(
        f"Personal{type_name}",
        [(name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET) for name in names],
        omit_defaults=True,
        gc=False,
    )


PLAINTEXT: dict[str, tuple[str, tuple[str, ...], msgspec.json.Decoder[Any]]] = {
    name: (owner, sealed, msgspec.json.Decoder(_fields_struct(name, sealed)))
    for name, (owner, sealed) in SEALING.items()
}
"""Per sealed type, `SEALING`'s owner field and sealed fields, and the decoder of those
fields' text (`_fields_struct`)."""


class NewBox(msgspec.Struct, frozen=True, gc=False):
    """A box on its way in: the ciphertext as bytes, which msgspec writes as standard
    base64 with padding, which `Box.box` decodes back. Untracked by the garbage
    collector, as are the `Split` structs: they hold no containers."""

    key: str
    box: bytes


class Split(NamedTuple):
    """How an append seals a payload of one type without parsing a value (`split`)."""

    whole: msgspec.json.Decoder[Any]
    """Every field of the type as its JSON text (`Raw`), clear ones first; an unknown
    field fails the decode, and the payload is sealed the slow way (`seal`), kept whole."""
    cut: int
    """The number of clear fields: `astuple(whole)[:cut]` are clear, the rest personal."""
    owner: int
    """The owner field's index among the clear ones."""
    personal: type[msgspec.Struct]
    """The personal fields (the box's plaintext), absent ones left out."""
    clear: type[msgspec.Struct]
    """The clear fields and the box: the stored payload, absent fields left out."""


def _raw_fields(names: Sequence[str]) -> list[tuple[str, Any, Any]]:
    return [(name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET) for name in names]


def _split(type_name: str, owner: str, sealed: tuple[str, ...]) -> Split:
    fields = msgspec.structs.fields(EVENT_TYPES[type_name])
    tag = EVENT_TYPES[type_name].__struct_config__.tag_field or "type"
    clear = [tag, *(f.encode_name for f in fields if f.encode_name not in sealed)]
    whole = msgspec.defstruct(
        f"Whole{type_name}",
        _raw_fields([*clear, *sealed]),
        forbid_unknown_fields=True,
        gc=False,
    )
    clear_struct = msgspec.defstruct(
        f"Clear{type_name}",
        [*_raw_fields(clear), (SEALED, NewBox | msgspec.UnsetType, msgspec.UNSET)],
        omit_defaults=True,
        gc=False,
    )
    return Split(
        whole=msgspec.json.Decoder(whole),
        cut=len(clear),
        owner=clear.index(owner),
        personal=_fields_struct(type_name, sealed),
        clear=clear_struct,
    )


SPLITS: dict[str, Split] = {
    name: _split(name, owner, sealed) for name, (owner, sealed) in SEALING.items()
}
"""Per sealed type, its `Split`: an append decodes a payload once into raw field texts,
encodes the personal ones as the box's plaintext and writes the clear ones back beside
the box, all in C: no value is parsed, no dict built, and the payload is not encoded
twice (its clear struct is encoded with the batch)."""

owner_text_of = msgspec.json.Decoder(str).decode
"""The owner field's raw JSON text as the id it spells."""


_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical(member: str) -> str:
    """A member id as `str(UUID)` spells it (what msgspec writes): the keyring's key."""
    return member if _CANONICAL.fullmatch(member) else str(UUID(member))


def associated_data(event_id: UUID, type_name: str) -> bytes:
    # `int.to_bytes` is `UUID.bytes` without the property's Python frame.
    return event_id.int.to_bytes(16, "big") + (TYPE_BYTES.get(type_name) or type_name.encode())


def ciphers(keys: Mapping[UUID, bytes] | Mapping[str, bytes]) -> dict[str, AESGCM]:
    """One cipher per key, by the member id as a box names it, for one batch."""
    return {str(member): AESGCM(key) for member, key in keys.items()}


def owner_text(type_name: str, payload: dict[str, Any]) -> str | None:
    """The id (as written in `payload`) of the member whose key seals it; None when it
    holds no personal field."""
    personal = PERSONAL.get(type_name)
    if personal is None:
        return None
    for name in personal.sealed:
        if name in payload:
            return str(payload[personal.owner])
    return None


def owner_of(type_name: str, payload: dict[str, Any]) -> UUID | None:
    owner = owner_text(type_name, payload)
    return None if owner is None else UUID(owner)


def seal(
    payload: dict[str, Any],
    event_id: UUID,
    type_name: str,
    owner: UUID | str,
    cipher: AESGCM,
    nonce: bytes | None = None,
) -> None:
    """Move the personal fields of `payload` (a decoded stored payload) into its box.

    `nonce`: 12 fresh random bytes, for callers that draw a batch's nonces at once."""
    fields = {name: payload.pop(name) for name in sealed_fields(type_name) if name in payload}
    payload[SEALED] = seal_fields(fields, event_id, type_name, str(owner), cipher, nonce)


def seal_fields(
    fields: dict[str, Any],
    event_id: UUID,
    type_name: str,
    owner: str,
    cipher: AESGCM,
    nonce: bytes | None = None,
) -> dict[str, Any]:
    """The stored box of these personal fields: `{"key": owner, "box": nonce + ciphertext}`.

    The box is left as bytes: msgspec's JSON encoder writes bytes as standard base64 with
    padding, the same text `binascii.b2a_base64` gives, so no round trip through str."""
    nonce = nonce or os.urandom(NONCE)
    ciphertext = cipher.encrypt(
        nonce, _encoder.encode(fields), associated_data(event_id, type_name)
    )
    return {"key": owner, "box": nonce + ciphertext}


def peek_box(type_name: str, data: bytes | str) -> PeekedBox | None:
    return _peek_any(data) if type_name in SEALED_TYPES else None


def _peek_any(data: bytes | str) -> PeekedBox | None:
    try:
        return _peek.decode(data).sealed
    except msgspec.ValidationError:  # not base64: `unbox` refuses it, as it always did
        return _peek_text.decode(data).sealed


def peek(data: bytes | str) -> UUID | None:
    """The key a stored payload is sealed under, if any."""
    box = _peek_any(data)
    return None if box is None else UUID(box.key)


def unbox(box: PeekedBox, event_id: UUID, type_name: str, cipher: AESGCM) -> bytes:
    """The JSON object of the personal fields."""
    try:
        raw = box.box if isinstance(box.box, bytes) else binascii.a2b_base64(box.box)
        return cipher.decrypt(raw[:NONCE], raw[NONCE:], associated_data(event_id, type_name))
    except (InvalidTag, binascii.Error) as error:
        raise UnreadableBox(event_id) from error


def open_payload(
    data: bytes | str, event_id: UUID, type_name: str, keys: Mapping[str, AESGCM]
) -> tuple[dict[str, Any], bool]:
    """The payload as readers show it (personal fields in clear, or erased), and whether erased."""
    payload: dict[str, Any] = msgspec.json.decode(data)
    stored = payload.pop(SEALED, None)
    if stored is None:
        return payload, False
    box = _convert_box(stored)
    key = keys.get(box.key)
    if key is None:
        payload.update(dict.fromkeys(sealed_fields(type_name)))
        payload[ERASED] = True
        return payload, True
    payload.update(msgspec.json.decode(unbox(box, event_id, type_name, key)))
    return payload, False


def _convert_box(stored: Any) -> PeekedBox:
    try:
        return msgspec.convert(stored, Box)
    except msgspec.ValidationError:
        return msgspec.convert(stored, _TextBox)


_BOX_AT = b'"sealed": {"box": "'
_KEY_AT = b'", "key": "'


def open_for_reader(
    data: bytes, box: PeekedBox, event_id: UUID, type_name: str, keys: Mapping[str, AESGCM]
) -> tuple[bytes, bool]:
    """`open_payload`, spliced rather than decoded and encoded again: the box cut out of
    the stored text (as PostgreSQL writes jsonb: `"sealed": {"box": …, "key": …}`), the
    opened fields (or their nulls and `"erased": true`) put at the end. The cut must be
    the only `"sealed": {"box": "` in the text and spell the peeked box and key; any other
    spelling is decoded the slow way, so the answer never holds the box. The search is for
    that short prefix, not the whole box: a long needle costs a preprocessing per row."""
    at = data.find(_BOX_AT)
    start = at + len(_BOX_AT)
    quote = data.find(b'"', start)
    end = quote + len(_KEY_AT) + len(box.key) + 2
    if (
        at < 0
        or quote < 0
        or not isinstance(box.box, bytes)
        or data.find(_BOX_AT, start) >= 0
        or data[quote:end] != _KEY_AT + box.key.encode() + b'"}'
        or data[start:quote] != binascii.b2a_base64(box.box, newline=False)
    ):
        payload, erased = open_payload(data, event_id, type_name, keys)
        return _encoder.encode(payload), erased
    head, tail = data[:at], data[end:-1]  # the object's closing brace comes back last
    if tail[:2] == b", ":
        tail = tail[2:]
    elif head[-2:] == b", ":
        head = head[:-2]
    key = keys.get(box.key)
    if key is None:
        fields, erased = _erased_json[type_name], True
    else:
        fields, erased = unbox(box, event_id, type_name, key)[1:-1], False
    if not fields:
        return head + tail + b"}", erased
    comma = b", " if head != b"{" or tail else b""
    return b"".join((head, tail, comma, fields, b"}")), erased


def open_cut(
    data: bytes,
    key: str | None,
    box: str | None,
    event_id: UUID,
    type_name: str,
    keys: Mapping[str, AESGCM],
) -> tuple[bytes, bool]:
    """`open_for_reader` of a payload the database sent with its box already cut out and
    beside it (its member's id and base64 text; services/store/records.py `CUT_COLUMNS`):
    the opened fields, or their nulls and `"erased": true`, put at the end."""
    if key is None or box is None:  # a `sealed` that is not a box: never shown in clear
        raise UnreadableBox(event_id)
    cipher = keys.get(key)
    if cipher is None:
        fields, erased = _erased_json[type_name], True
    else:
        try:
            raw = binascii.a2b_base64(box)
            plaintext = cipher.decrypt(
                raw[:NONCE], raw[NONCE:], associated_data(event_id, type_name)
            )
        except (InvalidTag, binascii.Error) as error:
            raise UnreadableBox(event_id) from error
        fields, erased = plaintext[1:-1], False
    if not fields:
        return data, erased
    return data[:-1] + (b", " if len(data) > 2 else b"") + fields + b"}", erased


def open_for_fold(data: bytes, event_id: UUID, type_name: str, keys: Mapping[str, AESGCM]) -> bytes:
    """The payload as a fold decodes it, spliced rather than re-encoded (folds read millions):
    the opened fields (or the blanks) appended to the object; the box is an unknown field
    the event decoder skips."""
    return open_box_for_fold(data, _peek_any(data), event_id, type_name, keys)


def open_box_for_fold(
    data: bytes, box: PeekedBox | None, event_id: UUID, type_name: str, keys: Mapping[str, AESGCM]
) -> bytes:
    """`open_for_fold` with the box already peeked (a batch peeks once, to find its keys)."""
    if box is None:
        return data
    key = keys.get(box.key)
    if key is None:
        fields = _blank_json.get(type_name, b"")
    else:
        fields = unbox(box, event_id, type_name, key)[1:-1]
    return data[:-1] + b"," + fields + b"}" if fields else data


def handle_digest(secret: bytes, tag: str) -> str:
    """`handle:<platform>:<name>` as stored: `handle:<HMAC-SHA-256 hex>`; other tags as they are.

    A stored digest has no colon after `handle:`, so hashing is idempotent."""
    if not tag.startswith(HANDLE_TAG) or ":" not in tag[len(HANDLE_TAG) :]:
        return tag
    key = tag[len(HANDLE_TAG) :].encode()
    return HANDLE_TAG + hmac.digest(secret, key, "sha256").hex()  # one-shot: hmac.new's result


def handle_hasher(secret: bytes) -> Callable[[str], str]:
    """`handle_digest` under one secret, its HMAC keyed once: each tag then costs a copy
    of the keyed state and one update, not a key schedule and a digest lookup by name."""
    keyed = hmac.new(secret, digestmod=hashlib.sha256)
    prefix = len(HANDLE_TAG)

    def digest(tag: str) -> str:
        if not tag.startswith(HANDLE_TAG) or ":" not in tag[prefix:]:
            return tag
        hashed = keyed.copy()
        hashed.update(tag[prefix:].encode())
        return HANDLE_TAG + hashed.hexdigest()

    return digest
