"""The store's side of sealing: events are sealed on their way in and opened on the way out.

Every reader of `events` opens rows here, so no reader shows ciphertext or forgets to
treat an erased member: a batch of rows costs one key lookup (`data_keys` with all the
members it names), never one per event. Handle tags are stored as keyed digests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.privacy import sealing
from services.privacy.keyring import DraftKeys, Keyring
from services.privacy.master import KEY_BYTES
from services.store.records import AppendCondition, NewEvent, Query, RecordedEvent
from services.store.state import Row

_encoder = msgspec.json.Encoder()


class Sealer:
    """Seals and opens with the process's keyring; one per `Ledger`."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def tag(self, tag: str) -> str:
        return sealing.handle_digest(self.keyring.handle_secret, tag)

    def tags(self, tags: Iterable[str]) -> list[str]:
        return [sealing.handle_digest(self.keyring.handle_secret, tag) for tag in tags]

    def condition(self, condition: AppendCondition | None) -> AppendCondition | None:
        if condition is None:
            return None
        queries = tuple(
            Query(tags=tuple(self.tags(q.tags)), types=q.types)
            for q in condition.fail_if_events_match
        )
        return AppendCondition(fail_if_events_match=queries, after=condition.after)

    async def seal(
        self, conn: psycopg.AsyncConnection[Any], events: Sequence[NewEvent], *, drafting: bool
    ) -> tuple[list[NewEvent], DraftKeys | None]:
        """`events` with personal fields boxed and handle tags hashed; one key lookup.

        New members' keys are made now, committed (`drafting` False), or drafted for the
        append to insert (True; see DraftKeys). Only payloads of types that have personal
        fields are decoded; each is decoded and encoded once and its personal fields
        encoded once; members are looked up by their id's text (no UUID parsed), and one
        cipher serves each member (kept across batches for cached keys)."""
        plans: list[tuple[int, dict[str, Any], str, dict[str, Any]]] = []
        specs = sealing.SEALING
        decode = _decoder.decode
        for index, event in enumerate(events):
            spec = specs.get(event.type)
            if spec is None:
                continue
            owner_field, names = spec
            payload = decode(event.data)
            fields = {name: payload.pop(name) for name in names if name in payload}
            if fields:
                plans.append((index, payload, payload[owner_field], fields))
        sealed = list(events)
        draft = None
        if plans:
            owners = {owner: sealing.canonical(owner) for owner in {plan[2] for plan in plans}}
            wanted = set(owners.values())
            keys = await self.keyring.keys_of(conn, wanted, create=not drafting)
            if drafting and len(keys) < len(wanted):
                draft = self.keyring.draft(wanted - keys.keys())
                keys |= draft.keys
            # A forgotten member has no key. The rules refuse new events about them; what
            # still gets here (a retried append the ledger will answer as a replay) is
            # sealed under a key nobody keeps: unreadable from the start, never in clear.
            keys |= {member: os.urandom(KEY_BYTES) for member in wanted - keys.keys()}
            cipher = self.keyring.cipher
            ciphers = {owner: cipher(member, keys[member]) for owner, member in owners.items()}
            nonces = os.urandom(sealing.NONCE * len(plans))
            encode, ad, box_field = _encoder.encode, sealing.associated_data, sealing.SEALED
            for at, (index, payload, owner, fields) in enumerate(plans):
                event = events[index]
                nonce = nonces[at * sealing.NONCE : (at + 1) * sealing.NONCE]
                box = ciphers[owner].encrypt(nonce, encode(fields), ad(event.event_id, event.type))
                # Box bytes: msgspec writes bytes as standard base64, the box's stored text.
                payload[box_field] = {"key": owners[owner], "box": nonce + box}
                sealed[index] = msgspec.structs.replace(event, data=msgspec.Raw(encode(payload)))
        secret = self.keyring.handle_secret
        for index, event in enumerate(sealed):
            tags = event.tags
            for tag in tags:
                if tag.startswith(sealing.HANDLE_TAG):
                    hashed = tuple(sealing.handle_digest(secret, tag) for tag in tags)
                    sealed[index] = msgspec.structs.replace(event, tags=hashed)
                    break
        return sealed, draft

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

    async def _ciphers(
        self, conn: psycopg.AsyncConnection[Any], boxes: Iterable[sealing.Box | None]
    ) -> dict[str, AESGCM]:
        """One key lookup for every box of a batch; ciphers by the member id as boxes hold it."""
        members = {box.key for box in boxes if box is not None}
        if not members:
            return {}
        canonical = {member: sealing.canonical(member) for member in members}
        keys = await self.keyring.keys_of(conn, set(canonical.values()), create=False)
        cipher = self.keyring.cipher
        return {
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
        """The handler's state rows, opened as for a fold (a dry run's own are never sealed)."""
        boxes = [
            None if row.event_id is None else sealing.peek_box(row.type, row.data) for row in rows
        ]
        ciphers = await self._ciphers(conn, boxes)
        return [
            row
            if box is None or row.event_id is None
            else row._replace(
                data=sealing.open_box_for_fold(
                    _bytes(row.data), box, row.event_id, row.type, ciphers
                )
            )
            for row, box in zip(rows, boxes, strict=True)
        ]


_decoder = msgspec.json.Decoder(dict[str, Any])


def _decode(data: msgspec.Raw) -> dict[str, Any]:
    return _decoder.decode(data)


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data
