"""The store's side of sealing: events are sealed on their way in and opened on the way out.

Every reader of `events` opens rows here, so no reader shows ciphertext or forgets to
treat an erased member: a batch of rows costs one key lookup (`data_keys` with all the
members it names), never one per event. Handle tags are stored as keyed digests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.state import READS_PERSONAL
from services.privacy import sealing
from services.privacy.keyring import DraftKeys, Keyring
from services.privacy.master import KEY_BYTES
from services.store.records import (
    BOX,
    DATA,
    EVENT_ID,
    KEY,
    TYPE,
    AppendCondition,
    NewEvent,
    Query,
    RecordedEvent,
    SealedEvent,
    recorded,
)
from services.store.state import Row

_encoder = msgspec.json.Encoder()


class Sealer:
    """Seals and opens with the process's keyring; one per `Ledger`.

    `boxing` False appends personal fields in clear (handle tags are still hashed, so the
    same code reads the ledger): the "before" side of the benchmarks that measure what
    encryption costs on one code base. Nothing in settings or the CLI can set it."""

    def __init__(self, keyring: Keyring, *, boxing: bool = True) -> None:
        self.keyring = keyring
        self.boxing = boxing
        self._digest = sealing.handle_hasher(keyring.handle_secret)

    def tag(self, tag: str) -> str:
        return self._digest(tag)

    def tags(self, tags: Iterable[str]) -> list[str]:
        listed = list(tags)
        if not _names_a_handle(listed):  # one scan in C, not a call per tag
            return listed
        return [self._digest(tag) for tag in listed]

    def condition(self, condition: AppendCondition | None) -> AppendCondition | None:
        """The condition with its handle tags hashed; its queries without one kept as they
        are (an import's condition names a few hundred handles and a thousand members)."""
        if condition is None:
            return None
        queries = condition.fail_if_events_match
        if not _names_a_handle(chain.from_iterable(q.tags for q in queries)):
            return condition
        hashed = tuple(
            Query(tags=tuple(map(self._digest, q.tags)), types=q.types)
            if _names_a_handle(q.tags)
            else q
            for q in queries
        )
        return AppendCondition(fail_if_events_match=hashed, after=condition.after)

    async def seal(
        self,
        conn: psycopg.AsyncConnection[Any],
        events: Sequence[NewEvent],
        *,
        drafting: bool,
        registering: bool = False,
    ) -> tuple[list[NewEvent | SealedEvent], DraftKeys | None]:
        """`events` with personal fields boxed and handle tags hashed; one key lookup.

        New members' keys are made now, committed (`drafting` False), or drafted for the
        append to insert (True; see DraftKeys). With `registering` (and `drafting`), the
        members this batch registers and this process has no key for are taken to have
        none: their keys are drafted without reading `member_keys` (a registering append
        then costs one round trip, not two). Wrong only if another append made one first:
        the append's insert then fails on the primary key and the store runs it again
        without `registering`, with that key. Only payloads of types that have personal
        fields are looked into, each decoded once into its fields' raw text
        (`sealing.SPLITS`): the personal ones encoded as the box's plaintext, the clear
        ones kept beside the box as a struct the batch's one encode writes out. Members
        are looked up by their id's text (no UUID parsed), one cipher serves each member
        (kept across batches for cached keys), and one `os.urandom` call draws every
        nonce of the batch (distinct 12-byte slices).

        What a batch keeps alive while it waits for the database is untracked by the
        garbage collector (`gc=False` structs, bytes, a few lists): a thousand tracked
        objects per batch were promoted to the oldest generation and set off full
        collections of the caller's heap (~0.2 s each in the bench) every few dozen
        batches."""
        indexes: list[int] = []
        payloads: list[msgspec.Struct | dict[str, Any]] = []
        owners: list[str] = []
        plaintexts: list[bytes] = []
        registered: set[str] = set()
        payload: msgspec.Struct | dict[str, Any]
        splits, astuple, unset = sealing.SPLITS, msgspec.structs.astuple, msgspec.UNSET
        if not self.boxing:
            splits = {}
        encode, owner_text = _encoder.encode, sealing.owner_text_of
        for index, event in enumerate(events):
            split = splits.get(event.type)
            if split is None:
                continue
            try:
                values = astuple(split.whole.decode(event.data))
            except msgspec.ValidationError:  # a field the type does not know: kept whole
                planned = self._plan_whole(event)
                if planned is None:
                    continue
                payload, owner, plaintext = planned
            else:
                plaintext = encode(split.personal(*values[split.cut :]))
                if len(plaintext) == 2:  # b"{}": none of its personal fields is present
                    continue
                owned = values[split.owner]
                if owned is unset:
                    raise KeyError(sealing.SEALING[event.type][0])
                owner = owner_text(owned)
                payload = split.clear(*values[: split.cut])
            indexes.append(index)
            payloads.append(payload)
            owners.append(owner)
            plaintexts.append(plaintext)
            if event.type == REGISTERED:
                registered.add(owner)
        sealed: list[NewEvent | SealedEvent] = list(events)
        draft = None
        if indexes:
            fresh = registered if drafting and registering else set()
            ciphers, spelled, draft = await self._sealing_ciphers(
                conn, set(owners), drafting, fresh
            )
            size = sealing.NONCE
            nonces = os.urandom(size * len(indexes))
            type_bytes, new_box, box_field = sealing.TYPE_BYTES, sealing.NewBox, sealing.SEALED
            for at, index in enumerate(indexes):
                event, owner, payload = events[index], owners[at], payloads[at]
                type_ = event.type
                nonce = nonces[at * size : at * size + size]
                # The associated data: `sealing.associated_data`, inlined (a call per event).
                ad = event.event_id.int.to_bytes(16, "big") + type_bytes[type_]
                box = ciphers[owner].encrypt(nonce, plaintexts[at], ad)
                boxed = new_box(spelled.get(owner, owner), nonce + box)
                if isinstance(payload, dict):
                    payload[box_field] = boxed
                else:
                    payload.sealed = boxed  # type: ignore[attr-defined]
                sealed[index] = SealedEvent(
                    event.event_id,
                    type_,
                    payload,
                    event.stream,
                    event.occurred_at,
                    event.tags,
                    event.schema_version,
                    event.metadata,
                )
        if _names_a_handle(chain.from_iterable(map(_tags, events))):
            self._hash_handle_tags(sealed)
        return sealed, draft

    @staticmethod
    def _plan_whole(event: NewEvent) -> tuple[dict[str, Any], str, bytes] | None:
        """A payload with fields its type does not declare, sealed with them kept: decoded
        whole, its personal fields cut out (their text as the payload spells it)."""
        owner_field, names, personal = sealing.PLAINTEXT[event.type]
        plaintext = _encoder.encode(personal.decode(event.data))
        if len(plaintext) == 2:
            return None
        payload = _decoder.decode(event.data)
        for name in names:
            payload.pop(name, None)
        return payload, payload[owner_field], plaintext

    async def _sealing_ciphers(
        self,
        conn: psycopg.AsyncConnection[Any],
        owners: set[str],
        drafting: bool,
        fresh: set[str],
    ) -> tuple[dict[str, AESGCM], dict[str, str], DraftKeys | None]:
        """A cipher per owner as payloads spell it; the canonical spelling (a box's `key`)
        of owners that may not be in it; and the draft of new members' keys, if any.
        Owners whose cipher is kept cost one lookup; the others one `keys_of`, but for
        `fresh` ones (see `seal`'s `registering`) that are not cached: drafted unread."""
        ciphers, others = self.keyring.cached_ciphers(owners)
        if not others:
            return ciphers, {}, None
        spelled = {owner: sealing.canonical(owner) for owner in others}
        wanted = set(spelled.values())
        unread = {spelled[owner] for owner in fresh if owner in spelled}
        keys = self.keyring.cached_keys(unread)
        unread -= keys.keys()
        keys |= await self.keyring.keys_of(conn, wanted - unread - keys.keys(), create=not drafting)
        draft = None
        if drafting and len(keys) < len(wanted):
            draft = self.keyring.draft(wanted - keys.keys())
            keys |= draft.keys
        # A forgotten member has no key. The rules refuse new events about them; what
        # still gets here (a retried append the ledger will answer as a replay) is
        # sealed under a key nobody keeps: unreadable from the start, never in clear.
        keys |= {member: os.urandom(KEY_BYTES) for member in wanted - keys.keys()}
        cipher = self.keyring.cipher
        built: dict[str, AESGCM] = {}
        for owner, member in spelled.items():
            made = built.get(member)
            if made is None:
                built[member] = made = cipher(member, keys[member])
            ciphers[owner] = made
        if draft is not None:  # kept with the keys once the append commits (`adopt`)
            draft.ciphers.update((member, built[member]) for member in draft.keys)
        return ciphers, spelled, draft

    def _hash_handle_tags(self, events: list[NewEvent | SealedEvent]) -> None:
        digest = self._digest
        for index, event in enumerate(events):
            tags = event.tags
            for tag in tags:
                if tag.startswith(sealing.HANDLE_TAG):
                    hashed = tuple(map(digest, tags))
                    events[index] = msgspec.structs.replace(event, tags=hashed)
                    break

    async def open(
        self, conn: psycopg.AsyncConnection[Any], records: list[RecordedEvent]
    ) -> list[RecordedEvent]:
        """Records as readers show them: personal fields in clear, or null and `erased`.
        Each sealed row is spliced (`sealing.open_for_reader`), not decoded and re-encoded."""
        boxes = [sealing.peek_box(r.type, r.data) for r in records]
        ciphers = await self._ciphers(conn, boxes)
        opened = []
        for record, box in zip(records, boxes, strict=True):
            if box is None:
                opened.append(record)
                continue
            data, erased = sealing.open_for_reader(
                bytes(record.data), box, record.event_id, record.type, ciphers
            )
            opened.append(msgspec.structs.replace(record, data=msgspec.Raw(data), erased=erased))
        return opened

    async def recorded(
        self, conn: psycopg.AsyncConnection[Any], rows: list[tuple[Any, ...]]
    ) -> list[RecordedEvent]:
        """Rows selected with `CUT_COLUMNS` as `open` shows records: the database has cut
        each box out of its payload and sent it beside (`sealing.open_cut`), so a row is
        neither parsed for its box nor searched for it, and its record is built once.
        A `sealed` field in a payload of a type that is never sealed is not a box: dropped."""
        sealed_types = sealing.SEALED_TYPES
        members = {row[KEY] for row in rows if row[KEY] is not None and row[TYPE] in sealed_types}
        ciphers = await self._ciphers_of(conn, members) if members else {}
        opened = []
        for row in rows:
            data = row[DATA].encode()
            if (row[KEY] is None and row[BOX] is None) or row[TYPE] not in sealed_types:
                opened.append(recorded(row, data))
                continue
            data, erased = sealing.open_cut(
                data, row[KEY], row[BOX], row[EVENT_ID], row[TYPE], ciphers
            )
            opened.append(recorded(row, data, erased))
        return opened

    async def _ciphers(
        self, conn: psycopg.AsyncConnection[Any], boxes: Iterable[sealing.PeekedBox | None]
    ) -> dict[str, AESGCM]:
        """One key lookup for every box of a batch; ciphers by the member id as boxes hold it.
        Members whose cipher or key this process keeps cost no statement: a page of members
        already seen reads nothing but its rows (an erasure drops them: keyring's NOTIFY)."""
        members = {box.key for box in boxes if box is not None}
        if not members:
            return {}
        return await self._ciphers_of(conn, members)

    async def _ciphers_of(
        self, conn: psycopg.AsyncConnection[Any], members: set[str]
    ) -> dict[str, AESGCM]:
        kept, others = self.keyring.cached_ciphers(members)
        if not others:
            return kept
        canonical = {member: sealing.canonical(member) for member in others}
        keys = await self.keyring.keys_of(conn, set(canonical.values()), create=False)
        cipher = self.keyring.cipher
        return kept | {
            member: cipher(text, keys[text]) for member, text in canonical.items() if text in keys
        }

    async def open_for_folds(
        self, conn: psycopg.AsyncConnection[Any], rows: list[tuple[UUID, str, bytes]]
    ) -> list[bytes]:
        """The payloads of (event id, type, stored payload) rows as a fold decodes them:
        each row parsed once for its box, one key lookup for the batch."""
        boxes = [sealing.peek_box(type_, data) for _, type_, data in rows]
        ciphers = await self._ciphers(conn, boxes)
        return [
            sealing.open_box_for_fold(data, box, event_id, type_, ciphers)
            for (event_id, type_, data), box in zip(rows, boxes, strict=True)
        ]

    async def open_rows(self, conn: psycopg.AsyncConnection[Any], rows: list[Row]) -> list[Row]:
        """The handler's state rows as its fold reads them (a dry run's own are never sealed):
        only the boxes whose fields the fold reads (`READS_PERSONAL`: names and handles) are
        opened; the others (a chunk's contributions, recognitions, introductions: most of
        what an import loads) fold blank, as an erased member's do, with no decryption, and
        their keys are looked up only if the batch opens another box of theirs."""
        boxes = [
            None if row.event_id is None else sealing.peek_box(row.type, row.data) for row in rows
        ]
        ciphers = await self._ciphers(
            conn,
            (box for row, box in zip(rows, boxes, strict=True) if row.type in READS_PERSONAL),
        )
        none: dict[str, AESGCM] = {}
        return [
            row
            if box is None or row.event_id is None
            else row._replace(
                data=sealing.open_box_for_fold(
                    _bytes(row.data),
                    box,
                    row.event_id,
                    row.type,
                    ciphers if row.type in READS_PERSONAL else none,
                )
            )
            for row, box in zip(rows, boxes, strict=True)
        ]


def _names_a_handle(tags: Iterable[str]) -> bool:
    """Whether any tag may be a handle's (`handle:`, hashed by `handle_digest`): false for
    most, which then cost no call each. A false positive only costs that call."""
    return sealing.HANDLE_TAG in "\n".join(tags)


_decoder = msgspec.json.Decoder(dict[str, Any])
_tags = attrgetter("tags")
REGISTERED = "MemberRegistered"


def _decode(data: msgspec.Raw) -> dict[str, Any]:
    return _decoder.decode(data)


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data
