"""Keys against a real database: the test master key, a keyring that follows erasures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import pytest
from psycopg import AsyncConnection

from domain.codec import encode_payload
from domain.events import Event, MemberForgotten, stream_of, tags_of, type_name
from domain.ids import new_id
from services.privacy.keyring import Keyring
from services.privacy.master import MasterKey, parse_master_key
from services.store import appending
from services.store.ledger import Ledger
from services.store.records import NewEvent
from tests.api.conftest import (  # noqa: F401 (fixtures, for tests that erase over HTTP)
    admin,
    admin_token,
    read_token,
    reader,
    write_token,
    writer,
)
from tests.conftest import TEST_MASTER_KEY


@pytest.fixture
def master() -> MasterKey:
    return parse_master_key(TEST_MASTER_KEY, source="the test key")


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(database_url, autocommit=True) as opened:
        yield opened


@pytest.fixture
async def keyring(
    conn: AsyncConnection[Any], master: MasterKey, database_url: str
) -> AsyncIterator[Keyring]:
    opened = await Keyring.open(conn, master)
    async with opened.listening(database_url):
        yield opened


def as_new_event(event: Event) -> NewEvent:
    return NewEvent(
        event_id=new_id(),
        type=type_name(event),
        schema_version=event.SCHEMA_VERSION,
        data=msgspec.Raw(encode_payload(event)),
        stream=stream_of(event),
        tags=tags_of(event),
        occurred_at=datetime.now(UTC),
    )


async def erase(
    ledger: Ledger, keyring: Keyring, conn: AsyncConnection[Any], member_id: UUID
) -> set[UUID]:
    """What erasure does to keys: MemberForgotten appended, the key destroyed, one
    transaction; answers whose key went (whether the append or `destroy` deleted it)."""
    async with conn.transaction():
        had = await _with_keys(conn, member_id)
        await ledger.append([as_new_event(MemberForgotten(member_id=member_id))], conn=conn)
        await keyring.destroy(conn, [member_id])
        return had - await _with_keys(conn, member_id)


async def append_bare(conn: AsyncConnection[Any], event: Event) -> None:
    """Append through the store's lowest layer (`ledger_append`), with none of what the
    Ledger does around it: to make states the Ledger never would."""
    await appending.call_append(
        conn, appending.parameters([as_new_event(event)], None, None, None, None)
    )


async def _with_keys(conn: AsyncConnection[Any], member_id: UUID) -> set[UUID]:
    cur = await conn.execute("SELECT member_id FROM member_keys WHERE member_id = %s", [member_id])
    return {row[0] for row in await cur.fetchall()}


def key_rows(database_url: str) -> dict[UUID, tuple[bytes, str]]:
    with psycopg.connect(database_url) as sync:
        rows = sync.execute("SELECT member_id, wrapped, kek_id FROM member_keys").fetchall()
    return {member_id: (bytes(wrapped), kek_id) for member_id, wrapped, kek_id in rows}
